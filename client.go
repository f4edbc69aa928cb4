package dynamostore

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// defaultBackend builds the default backend from the settings, making
// the DynamoDB client when none was given and creating or checking the
// table.
func defaultBackend(ctx context.Context, table string, cfg *settings) (*dynamoBackend, error) {
	if err := validTableName(table); err != nil {
		return nil, err
	}
	client, err := buildClient(ctx, cfg)
	if err != nil {
		return nil, err
	}
	tc, canCheck := client.(tableAPI)
	switch {
	case cfg.autoCreate && !canCheck:
		return nil, fmt.Errorf("%w: WithAutoCreate needs a client that can create tables", ErrInvalidOption)
	case cfg.autoCreate:
		if err := ensureTable(ctx, tc, table, cfg.table); err != nil {
			return nil, err
		}
	case canCheck:
		timeout := cfg.checkTimeout
		if timeout == 0 {
			timeout = checkTimeout
		}
		if err := checkTable(ctx, tc, table, cfg.reap.interval() == 0, timeout, cfg.logger); err != nil {
			return nil, err
		}
	}
	return newDynamoBackend(client, table, cfg.consistentRead)
}

// buildClient returns the client of the settings, or, when none was given,
// one built from the AWS configuration.
func buildClient(ctx context.Context, cfg *settings) (dynamoAPI, error) {
	client := cfg.client
	if client == nil {
		var awsCfg aws.Config
		if cfg.awsConfig != nil {
			awsCfg = cfg.awsConfig.Copy()
		} else {
			var err error
			if awsCfg, err = config.LoadDefaultConfig(ctx); err != nil {
				return nil, fmt.Errorf("dynamostore: loading AWS configuration: %w", err)
			}
		}
		if cfg.awsConfig == nil && loopback(cfg.endpoint) {
			// DynamoDB Local takes any credentials and region, but the SDK
			// insists on some: spare newcomers the setup.
			if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
				awsCfg.Credentials = credentials.NewStaticCredentialsProvider("local", "local", "")
			}
			if awsCfg.Region == "" {
				awsCfg.Region = localRegion
			}
		}
		if awsCfg.Region == "" {
			return nil, fmt.Errorf("%w: no AWS region: set AWS_REGION, or give the region in WithAWSConfig or a client of WithClient", ErrInvalidOption)
		}
		client = dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
			o.HTTPClient = sizePool(o.HTTPClient)
			if cfg.endpoint != "" {
				o.BaseEndpoint = aws.String(cfg.endpoint)
			}
			if loopback(cfg.endpoint) {
				// DynamoDB Local's CRC32 header does not always match
				// its body, and the SDK logs a warning for every call
				// that does not: on this machine there is nothing to
				// guard against.
				o.DisableValidateResponseChecksum = true
			}
		})
	}
	return client, nil
}

// sizePool returns the SDK's default HTTP client c with room for
// maxIdleConns idle connections to DynamoDB. The SDK keeps 10: under more
// concurrent requests, each call beyond them opens a new connection (a TLS
// handshake on AWS). Any other client, or one whose pool was sized
// already, is returned as it is.
func sizePool(c aws.HTTPClient) aws.HTTPClient {
	switch bc := c.(type) {
	case nil:
		return sizePool(awshttp.NewBuildableClient())
	case *awshttp.BuildableClient:
		if bc.GetTransport().MaxIdleConnsPerHost != awshttp.DefaultHTTPTransportMaxIdleConnsPerHost {
			return c
		}
		return bc.WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConns = max(tr.MaxIdleConns, maxIdleConns)
			tr.MaxIdleConnsPerHost = maxIdleConns
		})
	}
	return c
}

// localRegion is the region of a client for a loopback endpoint when none
// is configured.
const localRegion = "us-east-1"

// maxIdleConns is how many idle connections to DynamoDB the client the
// Store builds keeps open, enough for that many concurrent requests.
const maxIdleConns = 256

// loopback reports whether endpoint is a URL on this machine, where only an
// emulator such as DynamoDB Local can be.
func loopback(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Hostname() == "" {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}
