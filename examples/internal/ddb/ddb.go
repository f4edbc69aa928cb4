// Package ddb builds the DynamoDB client the examples use, so that they run
// against DynamoDB Local with no AWS setup and against AWS with the usual
// credential chain.
package ddb

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// LocalRegion is the region used with an endpoint when none is configured;
// DynamoDB Local accepts any.
const LocalRegion = "us-east-1"

// Config loads the AWS configuration. region, when not empty, overrides the
// configured one. With an endpoint (DynamoDB Local) and no AWS credentials
// in the environment (neither AWS_ACCESS_KEY_ID nor AWS_PROFILE, read
// through getenv), it uses static dummy credentials and, when no region is
// configured, LocalRegion. Without an endpoint a region is required.
func Config(ctx context.Context, region, endpoint string, getenv func(string) string) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	local := endpoint != ""
	if local && getenv("AWS_ACCESS_KEY_ID") == "" && getenv("AWS_PROFILE") == "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider("local", "local", "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		if !local {
			return aws.Config{}, errors.New("no AWS region: give -region or set AWS_REGION (or -endpoint for DynamoDB Local)")
		}
		cfg.Region = LocalRegion
	}
	return cfg, nil
}

// NewClient returns a DynamoDB client for cfg, talking to endpoint when it
// is not empty.
func NewClient(cfg aws.Config, endpoint string) *dynamodb.Client {
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			// DynamoDB Local sends no valid CRC32 with its error
			// replies; checking it only logs a warning each time.
			o.DisableValidateResponseChecksum = true
		}
	})
}

// TableExists reports whether the table exists.
func TableExists(ctx context.Context, client *dynamodb.Client, table string) (bool, error) {
	_, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	var notFound *types.ResourceNotFoundException
	if errors.As(err, &notFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up table %s: %w", table, err)
	}
	return true, nil
}
