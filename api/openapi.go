package api

import (
	_ "embed"
	"net/http"

	"newsletter/newsroom"
)

// openapiDoc describes the routes (OpenAPI 3); TestOpenAPIMatchesRoutes
// keeps the two in step.
//
//go:embed openapi.json
var openapiDoc []byte

func (api *API) openAPI(w http.ResponseWriter, _ *http.Request, _ newsroom.Actor) error {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapiDoc)
	return nil
}
