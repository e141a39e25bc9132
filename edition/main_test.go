package edition_test

import (
	"testing"

	"newsletter/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
