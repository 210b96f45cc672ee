package pss_test

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigilsec/vigil/webhook/pss"
)

func TestMessage(t *testing.T) {
	const maxMessage = 1024 // the ABI's message limit
	vs := []pss.Violation{
		{Check: "hostNamespaces", Reason: "host namespaces", Detail: "hostPID=true"},
		{Check: "privileged", Reason: "privileged", Detail: `container "sh" must not set securityContext.privileged=true`},
	}
	want := "hostNamespaces: host namespaces (hostPID=true)\n" +
		`privileged: privileged (container "sh" must not set securityContext.privileged=true)`
	if got := pss.Message(vs, maxMessage); got != want {
		t.Fatalf("got %q", got)
	}

	// Too many to fit: whole lines, then a count of the rest.
	var many []pss.Violation
	for range 40 {
		many = append(many, pss.Violation{Check: "sysctls", Reason: "forbidden sysctls", Detail: strings.Repeat("kernel.x,", 6)})
	}
	got := pss.Message(many, maxMessage)
	lines := strings.Split(got, "\n")
	if len(got) > maxMessage || !strings.HasPrefix(lines[len(lines)-1], "truncated: ") {
		t.Fatalf("%d bytes, last line %q", len(got), lines[len(lines)-1])
	}
	for _, l := range lines[:len(lines)-1] {
		if l != many[0].Check+": "+many[0].String() {
			t.Fatalf("cut line %q", l)
		}
	}
	if n := len(lines) - 1; lines[len(lines)-1] != "truncated: "+strconv.Itoa(len(many)-n)+" more violations" {
		t.Fatalf("last line %q after %d lines", lines[len(lines)-1], n)
	}

	// One line longer than the limit is cut on a rune boundary.
	huge := []pss.Violation{{Check: "seLinuxOptions", Reason: "seLinuxOptions", Detail: strings.Repeat("é", 2000)}, vs[0]}
	got = pss.Message(huge, maxMessage)
	if len(got) > maxMessage || !utf8.ValidString(got) || !strings.HasSuffix(got, "\ntruncated: 1 more violations") {
		t.Fatalf("%d bytes, valid %v, ends %q", len(got), utf8.ValidString(got), got[len(got)-40:])
	}
}
