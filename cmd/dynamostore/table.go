package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/tableschema"
)

// defaultCapacity is what EnsureTable provisions for a side of a
// provisioned table left at 0 (see dynamostore.TableOptions).
const defaultCapacity = 5

func setupCreateTable(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
	var read, write int64
	var wait time.Duration
	var ownerIndex bool
	fs.Int64Var(&read, "read", 0, fmt.Sprintf("provisioned read capacity `units`; with --read or --write the table is provisioned\n(the other side defaults to %d), otherwise on-demand", defaultCapacity))
	fs.Int64Var(&write, "write", 0, fmt.Sprintf("provisioned write capacity `units` (default %d when --read is given)", defaultCapacity))
	fs.DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the table (and the owner index) to become ACTIVE")
	fs.BoolVar(&ownerIndex, "owner-index", false, "also create the index "+tableschema.OwnerIndex+" that revoke-owner and Store.RevokeOwner need\n(added to an existing table too)")
	return func(ctx context.Context, args []string) error {
		if read < 0 || write < 0 {
			return usagef("--read and --write must not be negative")
		}
		if wait <= 0 {
			return usagef("--wait must be positive")
		}
		table, err := e.tableOnly("create-table", args)
		if err != nil {
			return err
		}
		client, err := e.client(ctx)
		if err != nil {
			return err
		}
		// Provisioned when either capacity flag is given, even as 0 (which
		// is then the default of 5), as the help says.
		provisioned := false
		fs.Visit(func(f *flag.Flag) { provisioned = provisioned || f.Name == "read" || f.Name == "write" })
		opts := dynamostore.TableOptions{OnDemand: !provisioned, ReadCapacity: read, WriteCapacity: write, WaitTimeout: wait, OwnerIndex: ownerIndex}
		if err := dynamostore.EnsureTable(ctx, client, table, opts); err != nil {
			return err
		}
		st, err := describe(ctx, client, table)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "table %s is %s, billing %s, TTL %s on %s\n", table, st.Status, st.billing(), st.TTLStatus, st.TTLAttribute)
		return nil
	}
}

// tableStatus is what status reports.
type tableStatus struct {
	Table         string `json:"table"`
	Status        string `json:"status"`
	Billing       string `json:"billing"`
	ReadCapacity  int64  `json:"readCapacity,omitempty"`
	WriteCapacity int64  `json:"writeCapacity,omitempty"`
	TTLStatus     string `json:"ttlStatus"`
	TTLAttribute  string `json:"ttlAttribute,omitempty"`
	// ItemCount and SizeBytes are DynamoDB's approximations, updated about
	// every six hours.
	ItemCount int64  `json:"approximateItemCount"`
	SizeBytes int64  `json:"approximateSizeBytes"`
	KeySchema string `json:"keySchema"`
	// OwnerIndex is the status of the owner index, "" when there is none.
	OwnerIndex string `json:"ownerIndex,omitempty"`
	// Usable is false when the store cannot use the table: its key, an
	// attribute the store writes or the owner index has the wrong type or
	// layout. status then exits with status 1.
	Usable bool `json:"usable"`
	// Problems lists what keeps the table from working with dynamostore:
	// first what makes it unusable, then what keeps DynamoDB from
	// expiring sessions (TTL), which the reaper can make up for.
	Problems []string `json:"problems,omitempty"`

	unusable []string // the problems that make the table unusable
}

func (st *tableStatus) billing() string {
	if st.Billing == string(types.BillingModeProvisioned) {
		return fmt.Sprintf("%s (read %d, write %d)", st.Billing, st.ReadCapacity, st.WriteCapacity)
	}
	return st.Billing
}

// describe reads the table's description and TTL settings and checks them
// against what dynamostore needs.
func describe(ctx context.Context, client *dynamodb.Client, table string) (*tableStatus, error) {
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return nil, tableError(table, err)
	}
	d := out.Table
	if d == nil {
		return nil, fmt.Errorf("DynamoDB's answer to DescribeTable described no table %s", table)
	}
	st := &tableStatus{
		Table:     table,
		Status:    string(d.TableStatus),
		Billing:   string(types.BillingModeProvisioned),
		ItemCount: aws.ToInt64(d.ItemCount),
		SizeBytes: aws.ToInt64(d.TableSizeBytes),
	}
	if d.BillingModeSummary != nil && d.BillingModeSummary.BillingMode != "" {
		st.Billing = string(d.BillingModeSummary.BillingMode)
	}
	if pt := d.ProvisionedThroughput; pt != nil && st.Billing == string(types.BillingModeProvisioned) {
		st.ReadCapacity, st.WriteCapacity = aws.ToInt64(pt.ReadCapacityUnits), aws.ToInt64(pt.WriteCapacityUnits)
	}
	attrTypes := map[string]types.ScalarAttributeType{}
	for _, a := range d.AttributeDefinitions {
		attrTypes[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	for _, k := range d.KeySchema {
		if st.KeySchema != "" {
			st.KeySchema += ", "
		}
		name := aws.ToString(k.AttributeName)
		st.KeySchema += fmt.Sprintf("%s %s (%s)", k.KeyType, name, attrTypes[name])
	}
	for _, gsi := range d.GlobalSecondaryIndexes {
		if aws.ToString(gsi.IndexName) == tableschema.OwnerIndex {
			st.OwnerIndex = string(gsi.IndexStatus)
			if st.OwnerIndex == "" {
				st.OwnerIndex = string(types.IndexStatusActive)
			}
		}
	}
	st.unusable = tableschema.Problems(d)
	if _, problem := tableschema.OwnerIndexProblem(d); problem != "" {
		st.unusable = append(st.unusable, problem)
	}
	st.Usable = len(st.unusable) == 0
	st.Problems = slices.Clone(st.unusable)

	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		return nil, tableError(table, err)
	}
	st.TTLStatus = string(types.TimeToLiveStatusDisabled)
	if t := ttl.TimeToLiveDescription; t != nil {
		st.TTLStatus = string(t.TimeToLiveStatus)
		st.TTLAttribute = aws.ToString(t.AttributeName)
	}
	switch {
	case st.TTLStatus == string(types.TimeToLiveStatusDisabled):
		st.Problems = append(st.Problems, fmt.Sprintf("TTL is off: enable it on %q (create-table does) or keep the reaper running", tableschema.ExpiresAttr))
	case st.TTLAttribute != tableschema.ExpiresAttr:
		st.Problems = append(st.Problems, fmt.Sprintf("TTL is on attribute %q, not %q: DynamoDB will never expire sessions", st.TTLAttribute, tableschema.ExpiresAttr))
	}
	return st, nil
}

func setupStatus(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "print the status as a JSON object")
	return func(ctx context.Context, args []string) error {
		table, err := e.tableOnly("status", args)
		if err != nil {
			return err
		}
		client, err := e.client(ctx)
		if err != nil {
			return err
		}
		st, err := describe(ctx, client, table)
		if err != nil {
			return err
		}
		if asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(st); err != nil {
				return err
			}
			return st.err()
		}
		ttl := st.TTLStatus
		if st.TTLAttribute != "" {
			ttl += " on " + st.TTLAttribute
		}
		fmt.Fprintf(e.stdout, "table:       %s\n", st.Table)
		fmt.Fprintf(e.stdout, "status:      %s\n", st.Status)
		fmt.Fprintf(e.stdout, "key:         %s\n", st.KeySchema)
		fmt.Fprintf(e.stdout, "billing:     %s\n", st.billing())
		fmt.Fprintf(e.stdout, "ttl:         %s\n", ttl)
		if st.OwnerIndex != "" {
			fmt.Fprintf(e.stdout, "owner index: %s %s\n", tableschema.OwnerIndex, st.OwnerIndex)
		} else {
			fmt.Fprintf(e.stdout, "owner index: none (create-table --owner-index adds it)\n")
		}
		fmt.Fprintf(e.stdout, "items:       ~%d (DynamoDB updates this about every 6 hours)\n", st.ItemCount)
		fmt.Fprintf(e.stdout, "size:        ~%d bytes\n", st.SizeBytes)
		for _, p := range st.Problems {
			fmt.Fprintf(e.stdout, "problem:     %s\n", p)
		}
		return st.err()
	}
}

// err returns an error saying why the store cannot use the table, or nil
// when it can.
func (st *tableStatus) err() error {
	if len(st.unusable) == 0 {
		return nil
	}
	return fmt.Errorf("the store cannot use this table: %s", strings.Join(st.unusable, "; "))
}
