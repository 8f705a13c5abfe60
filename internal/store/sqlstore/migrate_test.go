package sqlstore

import "testing"

// TestMigrationVersionsAreUnique: the embedded migrations load, and two
// files with one number (the second would be skipped wherever the first
// was applied) are refused.
func TestMigrationVersionsAreUnique(t *testing.T) {
	if _, err := loadMigrations(); err != nil {
		t.Fatalf("embedded migrations: %v", err)
	}
	for _, tc := range []struct {
		names []string
		ok    bool
	}{
		{[]string{"0001_a.sql", "0002_b.sql"}, true},
		{[]string{"0003_x.sqlite.sql", "0003_x.postgres.sql"}, true},
		{[]string{"0004_a.sql", "0004_b.sql"}, false},
		{[]string{"0005_a.sql", "0005_b.sqlite.sql"}, false},
		{[]string{"0006_a.sqlite.sql", "0006_b.sqlite.sql"}, false},
	} {
		var ms []migration
		for _, n := range tc.names {
			var v int
			for _, c := range n[:4] {
				v = v*10 + int(c-'0')
			}
			ms = append(ms, migration{version: v, name: n, engine: migrationEngine(n)})
		}
		if err := uniqueVersions(ms); (err == nil) != tc.ok {
			t.Errorf("%v: err = %v, want ok = %v", tc.names, err, tc.ok)
		}
	}
}
