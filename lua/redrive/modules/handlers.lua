-- Error handler directives (only valid in a module's `onerror`). The engine
-- implements them; this file registers their mapper fields.
--   builtin:Break    {retry?, count?, interval? (minutes), intervalSeconds?}
--   builtin:Resume   the mapper is the substitute output of the failed module
--   builtin:Ignore, builtin:Commit, builtin:Rollback
return {
  handlers = {
    { type = "builtin:Break", fields = { retry = "boolean", count = "any", interval = "any", intervalSeconds = "any" } },
    { type = "builtin:Ignore", fields = {} },
    { type = "builtin:Commit", fields = {} },
    { type = "builtin:Rollback", fields = {} },
  },
}
