// Package demo holds the test of `make demo` (scripts/demo.sh): the script
// run as a user runs it, with the readable ports taken, and with a relay
// that refuses a subscriber.
package demo
