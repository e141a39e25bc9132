package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The OpenAPI document and the registered routes describe the same API:
// every route is in the document, and every operation of the document is a
// route, admin routes documented as refusing editors with 403.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want 3.x", doc.OpenAPI)
	}
	registered := map[string]route{}
	for _, rt := range routes {
		key := rt.method + " " + rt.path
		if _, dup := registered[key]; dup {
			t.Errorf("route %s twice", key)
		}
		registered[key] = rt
		op, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("route %s is not in openapi.json", key)
			continue
		}
		var o struct {
			Responses map[string]json.RawMessage `json:"responses"`
		}
		if err := json.Unmarshal(op, &o); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		codes := make([]string, 0, len(o.Responses))
		for c := range o.Responses {
			codes = append(codes, c)
		}
		if rt.admin != slices.Contains(codes, "403") {
			t.Errorf("%s: admin %v, but the document's responses are %v", key, rt.admin, codes)
		}
		if rt.public == slices.Contains(codes, "401") {
			t.Errorf("%s: public %v, but the document's responses are %v", key, rt.public, codes)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if _, ok := registered[strings.ToUpper(method)+" "+path]; !ok {
				t.Errorf("openapi.json has %s %s, which is no route", strings.ToUpper(method), path)
			}
		}
	}
}
