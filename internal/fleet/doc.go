// Package fleet holds the store's multi-process test. It has no API; the
// test is in fleet_test.go, the app it runs in ./app.
//
// TestFleet builds the app, starts three processes of it that share one
// session table on DynamoDB Local, each with another gob history (one
// plain, two that registered and encoded other types at start-up, in
// another order), and puts a round-robin reverse proxy on loopback in
// front of them. Many clients, each with its own cookie jar and one
// request at a time, create a session, read it, sign in (Regenerate),
// read, write and read, sign out, and replay their pre-sign-in and
// signed-out cookies, while the test throttles a share of every process's
// DynamoDB calls for a few seconds and kills one process with SIGKILL and
// starts it again. It checks, and logs with its figures:
//
//	a. no acknowledged write is lost: a later read never shows a lower counter
//	b. a pre-sign-in or signed-out cookie never loads again, on any process
//	c. no response carries another client's session
//	d. no 500, and every error is of a class the README tells apps how to answer
//	e. an unchanged read costs one GetItem and no write, whichever process
//	   wrote the session last and whichever serves the read (the cost matrix)
//
// and reports throughput, latency and the cost of each kind of request away
// from the faults. Flags (after the package on the go test command line):
//
//	-fleet.procs=N          processes in TestFleet (3)
//	-fleet.clients=N        concurrent clients (24)
//	-fleet.history=identical  give every process the same (plain) gob history
//	-fleet.shapes=1,3,6     run TestFleetShapes: the same fault-free traffic on each fleet size
//	-fleet.cycles=N         scripted visits per client in TestFleetShapes (6)
//
// Everything listens on loopback; every process started is stopped when
// the test ends, and exits by itself if the test binary dies (its standard
// input reaches EOF).
package fleet
