-- berth schema v11 (SQLite): the index usage_bytes holds the namespaces'
-- usage rows only. Its one reader, TopNamespaces (the metrics' largest
-- namespaces), asks for scope 'n'; indexing the repository and registry
-- rows too made every change of their bytes (three usage rows a manifest
-- PUT, every row a collector transaction counts down) keep an index entry
-- no statement reads (docs/design/usage.md, "Reading usage"). scope stays
-- the first column: SQLite, planning without statistics, chooses the index
-- for TopNamespaces' "scope = 'n' AND bytes > 0 ORDER BY bytes DESC" then.
DROP INDEX usage_bytes;
CREATE INDEX usage_bytes ON usage (scope, bytes) WHERE scope = 'n';
