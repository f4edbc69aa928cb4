package main

import (
	"os"
	"testing"

	"github.com/dynamostore/dynamostore/examples/frameworks/internal/apptest"
	"github.com/dynamostore/dynamostore/internal/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func TestSignInFlow(t *testing.T) {
	env := apptest.New(t)
	env.Flow(t, newServer(env.Store), sessionName)
}
