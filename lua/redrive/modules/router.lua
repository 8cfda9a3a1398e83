-- builtin:BasicRouter — routes: [{flow = [...], filter?}]. The engine runs
-- every route whose filter passes, in order, each with the bundle the router
-- received. A router is the last module of its flow.
return {
  type = "builtin:BasicRouter",
  fields = {},
  router = true,
}
