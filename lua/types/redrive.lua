---@meta redrive
-- LuaLS annotations for the `redrive` module (installed by `make install`
-- under share/lua/5.4/redrive/). Point your editor's Lua language server at
-- this directory ("Lua.workspace.library") to get completion and type checks.

---@alias redrive.ErrCode
---| "not_found" | "invalid" | "http" | "timeout" | "connect" | "tls"
---| "unsupported" | "conflict" | "canceled" | "auth" | "rate_limited"
---| "busy" | "corrupt" | "io" | "nomem" | "too_large" | "limit"

---@alias redrive.Status "success" | "warning" | "error" | "running" | "canceled"

---@class redrive
---@field version string
---@field json redrive.json
---@field http redrive.http
---@field pattern redrive.pattern
local rd = {}

---Run `fn(...)` in a new coroutine (task) on the loop.
---@param fn fun(...): ...
---@param ... any
---@return redrive.Task
function rd.spawn(fn, ...) end

---Yield the current task (or block the main chunk) for `seconds`.
---@param seconds number
function rd.sleep(seconds) end

---Loop time in seconds (monotonic).
---@return number
function rd.now() end

---Wall-clock Unix time in seconds.
---@return number
function rd.time() end

---Run functions concurrently and wait for all; the first result of each.
---@param fns (fun(): any)[]
---@return any[]|nil results
---@return string? err
function rd.all(fns) end

---@class redrive.EachSummary
---@field ok integer
---@field failed integer
---@field errors {index: integer, item: any, error: string}[]

---Call fn(item, i) for every item with at most `concurrency` calls in flight.
---@param src any[]|fun(): any
---@param fn fun(item: any, i: integer)
---@param opts? {concurrency?: integer}
---@return redrive.EachSummary
function rd.each(src, fn, opts) end

---The one value every cancelled wait raises (SIGINT, SIGTERM, task:cancel());
---prints as "interrupted". Compare with rd.is_canceled, never by text.
---@type userdata
rd.canceled = nil

---Is err the cancellation (rd.canceled itself)?
---@param err any
---@return boolean
function rd.is_canceled(err) end

---A condition variable for tasks.
---@return redrive.Cond
function rd.cond() end

---Run the loop until no task is left.
function rd.run() end

---Turn dry-run mode on or off; returns the previous setting.
---@param on? boolean
---@return boolean
function rd.dry_run(on) end

---@return boolean
function rd.is_dry_run() end

---The fingerprint (12 hex digits) and cause (readable template) of a failure
---message, as every source computes them (docs/fingerprints.md).
---@param message? string
---@param opts? {module?: string, module_id?: string|integer, class?: string, status?: integer}
---@return string fingerprint
---@return string cause
function rd.fingerprint(message, opts) end

---Connect to a source: nil (local, default store or default profile), a
---profile name from the config file, or options.
---@param opts? string|redrive.ConnectOpts
---@return redrive.Source|nil src
---@return string? err
---@return redrive.ErrCode? code
function rd.connect(opts) end

---Wrap a blueprint (a table or a JSON string).
---@param doc table|string
---@return redrive.Blueprint|nil bp
---@return string? err
---@return redrive.ErrCode? code
function rd.blueprint(doc) end

---@class redrive.Task
local Task = {}
---Wait for the task: its results, or nil and the error (with traceback).
---@return any ...
function Task:wait() end
---@return "ready"|"waiting"|"running"|"done"|"failed"
function Task:status() end
---Interrupt what the task waits on: that wait raises rd.canceled (a task not
---waiting at that moment gets it at its next wait). False when it has ended
---or is about to see an earlier cancel.
---@return boolean will_raise
function Task:cancel() end

---@class redrive.Cond
local Cond = {}
function Cond:wait() end
---@return integer woken
function Cond:signal() end
---@return integer woken
function Cond:broadcast() end

---@class redrive.json
---@field null userdata JSON null sentinel
local json = {}
---@param s string
---@return any|nil value
---@return string? err
---@return redrive.ErrCode? code
function json.decode(s) end
---@param v any
---@param opts? {pretty?: boolean}
---@return string|nil
---@return string? err
---@return redrive.ErrCode? code
function json.encode(v, opts) end
---@generic T: table
---@param t? T
---@return T
function json.array(t) end
---@generic T: table
---@param t? T
---@return T
function json.object(t) end
---@param t any
---@return "array"|"object"|nil
function json.kind(t) end

---Lua 5.4's string.find/match/gmatch/gsub, bounded: a call that exceeds
---`steps` matcher steps raises an error object `{code = "limit", message}`.
---@class redrive.PatternLib
---@field steps integer steps a call may spend
---@field find fun(s: string, pattern: string, init?: integer, plain?: boolean): integer?, integer?, ...
---@field match fun(s: string, pattern: string, init?: integer): ...
---@field gmatch fun(s: string, pattern: string, init?: integer): fun(): ...
---@field gsub fun(s: string, pattern: string, repl: string|table|function, n?: integer): string, integer

---@class redrive.pattern: redrive.PatternLib
local pattern = {}
---The same functions with `steps` steps a call.
---@param steps integer
---@return redrive.PatternLib
function pattern.bounded(steps) end
---Validate a pattern for find up front.
---@param p string
---@return true|nil
---@return string? err
---@return redrive.ErrCode? code
function pattern.check(p) end

---@class redrive.HttpRequest
---@field url string
---@field method? string
---@field headers? table<string, string>
---@field query? table<string, string|number|(string|number)[]>
---@field body? string
---@field json? any
---@field timeout? number seconds, default 30
---@field connect_timeout? number seconds, default 10
---@field follow? boolean follow redirects
---@field verify? boolean TLS verification, default true
---@field gzip? boolean default true
---@field user? string
---@field password? string
---@field max_body? integer decoded response body limit in bytes, default 16 MiB (`too_large`)

---@class redrive.Response
---@field status integer
---@field headers table<string, string> lower-case keys
---@field body string
---@field url string
---@field time number
---@field transfer integer bytes
---@field reused boolean
local Response = {}
---@return any|nil value
---@return string? err
---@return redrive.ErrCode? code
function Response:json() end

---@class redrive.http
local http = {}
---@param req redrive.HttpRequest
---@return redrive.Response|nil res
---@return string? err
---@return redrive.ErrCode? code
function http.request(req) end

---@class redrive.ConnectOpts
---@field kind? "local"|"make"|"n8n"|"sailpoint"|"kaizen"
---@field db? string local: store file
---@field base_url? string
---@field zone? string make: eu1, eu2, us1, us2, ...
---@field token? string
---@field token_env? string
---@field rate? number requests per second cap
---@field concurrency? integer

---@class redrive.ExecError
---@field module? integer|string
---@field message string
---@field code? string

---@class redrive.Execution
---@field id string
---@field scenario string|integer
---@field status redrive.Status
---@field mode? string
---@field started_at? number
---@field stopped_at? number
---@field retry_of? string
---@field retry_success_id? string
---@field parent_id? string
---@field attempts? integer
---@field operations? integer
---@field transfer? integer
---@field error? redrive.ExecError
---@field fingerprint? string stable id of the failure's normalised cause (12 hex digits)
---@field cause? string its readable template ("HTTP 503 from http://<host>/order/<n>")
---@field raw? table
local Execution = {}
---@return table<string, {input: any, output: any, error: any, duration: number}>|nil
function Execution:run_data() end
---Retry; with `attempts`, retry while it fails with exponential backoff.
---@param opts? {attempts?: integer, backoff?: {base?: number, factor?: number, max?: number}, safe?: boolean}
---@return redrive.Execution|nil
---@return string? err
---@return redrive.ErrCode? code
function Execution:retry(opts) end
---@return boolean|nil
---@return string? err
---@return redrive.ErrCode? code
function Execution:delete() end
---@param opts? {timeout?: number}
---@return redrive.Execution|nil
---@return string? err
---@return redrive.ErrCode? code
function Execution:wait(opts) end
---@return redrive.Execution[]
function Execution:chain() end

---@class redrive.Item
---@field id string
---@field scenario string|integer
---@field scenario_name? string
---@field reason string
---@field created number
---@field size? integer
---@field resolved boolean
---@field retry? boolean
---@field attempts integer
---@field execution_id? string
---@field index? integer
---@field failer? integer
---@field fingerprint? string stable id of the failure's normalised cause
---@field cause? string its readable template
---@field raw? table
local Item = {}
---@return redrive.Blueprint|nil
---@return string? err
---@return redrive.ErrCode? code
function Item:blueprint() end
---@return table|nil
function Item:bundle() end
---@param opts? {status?: 1|2|3, from?: number, to?: number}
---@return fun(): {status: integer, duration: number, operations: integer, transfer: integer, timestamp: number}|nil
function Item:logs(opts) end
---@param opts {blueprint?: redrive.Blueprint|table, failer?: integer}
---@return table|nil
---@return string? err
---@return redrive.ErrCode? code
function Item:patch(opts) end
---@param opts? {safe?: boolean, wait?: boolean, timeout?: number}
---@return {status: redrive.Status, execution: redrive.Execution}|nil
---@return string? err
---@return redrive.ErrCode? code
function Item:retry(opts) end
---@return boolean|nil
function Item:delete() end
---Mark handled without retrying ("unsupported" where the platform keeps no such flag).
---@return boolean|nil
---@return string? err
---@return redrive.ErrCode? code
function Item:resolve() end

---@class redrive.RetrySummary
---@field total integer
---@field succeeded integer
---@field failed integer
---@field skipped integer
---@field errors {id: string, message: string}[]
---@field dry_run? boolean

---@class redrive.Health
---@field total integer
---@field finished integer
---@field succeeded integer
---@field failed integer
---@field running integer
---@field success_rate number
---@field avg_duration number
---@field p95_duration number
---@field top_reasons {reason: string, count: integer, fingerprint?: string}[]

---@class redrive.Group
---@field fingerprint? string
---@field cause string
---@field count integer
---@field first? number
---@field last? number
---@field scenarios any[]
---@field scenario_names string[]
---@field example_ids string[]

---@class redrive.Source
---@field kind string
---@field name string
local Source = {}
---@param filter? {scenario?: any, status?: redrive.Status, mode?: string, fingerprint?: string, since?: number, until?: number, limit?: integer}
---@return fun(): redrive.Execution|nil
function Source:executions(filter) end
---@param id string
---@return redrive.Execution|nil
---@return string? err
---@return redrive.ErrCode? code
function Source:execution(id) end
---@param filter? {scenario?: any, resolved?: boolean, reason?: string, fingerprint?: string, since?: number, until?: number, limit?: integer}
---@return fun(): redrive.Item|nil
function Source:incomplete(filter) end
---@param id string
---@return redrive.Item|nil
---@return string? err
---@return redrive.ErrCode? code
function Source:incomplete_item(id) end
---@param opts {ids?: string[], all?: boolean, except?: string[], scenario?: any, fingerprint?: string, concurrency?: integer, progress?: boolean, safe?: boolean, wait?: boolean}
---@return redrive.RetrySummary|nil
---@return string? err
---@return redrive.ErrCode? code
function Source:retry(opts) end
---@param opts {ids?: string[], all?: boolean, confirmed?: boolean, except?: string[], scenario?: any, fingerprint?: string}
---@return {deleted: integer, errors: table[]}|nil
---@return string? err
---@return redrive.ErrCode? code
function Source:delete_incomplete(opts) end
---@param opts {scenario?: any, since?: number, limit?: integer}
---@return redrive.Health|nil
---@return string? err
---@return redrive.ErrCode? code
function Source:health(opts) end
---Failure groups by fingerprint, biggest first.
---@param opts? {scenario?: any, since?: number, until?: number, resolved?: boolean, limit?: integer}
---@return redrive.Group[]|nil
---@return string? err
---@return redrive.ErrCode? code
function Source:groups(opts) end
---Mark items handled without retrying them.
---@param opts {ids: string[]}
---@return {resolved: integer, errors: table[]}|nil
---@return string? err
---@return redrive.ErrCode? code
function Source:resolve(opts) end
---Local source only.
---@param opts {name: string, blueprint: redrive.Blueprint|table|string, dlq?: boolean}
---@return {id: integer, name: string}|nil
---@return string? err
---@return redrive.ErrCode? code
function Source:scenario_create(opts) end
---@param id integer
---@return table|nil
function Source:scenario(id) end
---@return table[]
function Source:scenarios() end
---@param id integer
---@param opts {blueprint: redrive.Blueprint|table}
---@return table|nil
---@return string? err
---@return redrive.ErrCode? code
function Source:scenario_update(id, opts) end
---Run a scenario on the local engine and wait for the execution.
---@param id integer
---@param opts? {input?: table, mode?: string}
---@return redrive.Execution|nil
---@return string? err
---@return redrive.ErrCode? code
function Source:run(id, opts) end

---@class redrive.Module
---@field id integer
---@field module string
---@field mapper table
---@field pointer string JSON Pointer of the module in the document

---@class redrive.Blueprint
---@field name? string
local Blueprint = {}
---@param pointer string RFC 6901
---@return any|nil
---@return string? err
---@return redrive.ErrCode? code
function Blueprint:get(pointer) end
---@param pointer string
---@param value any
---@return true|nil
---@return string? err
---@return redrive.ErrCode? code
function Blueprint:set(pointer, value) end
---@param pointer string
---@return true|nil
---@return string? err
---@return redrive.ErrCode? code
function Blueprint:remove(pointer) end
---RFC 7386 JSON Merge Patch.
---@param patch table|string
---@return true|nil
---@return string? err
---@return redrive.ErrCode? code
function Blueprint:merge(patch) end
---RFC 6902 JSON Patch, all or nothing.
---@param ops table[]|string
---@return true|nil
---@return string? err
---@return redrive.ErrCode? code
function Blueprint:apply(ops) end
---A JSON Patch turning this blueprint into `other`.
---@param other redrive.Blueprint|table
---@return table[]
function Blueprint:diff(other) end
---@param id integer
---@return redrive.Module|nil
function Blueprint:module(id) end
---@param filter? {module?: string}
---@return redrive.Module[]
function Blueprint:modules(filter) end
---@return true|nil
---@return {module?: integer, field?: string, message: string}[]? errors
---@return redrive.ErrCode? code
function Blueprint:validate() end
---@param opts? {pretty?: boolean}
---@return string
function Blueprint:json(opts) end
---@return redrive.Blueprint
function Blueprint:copy() end
---@return table
function Blueprint:totable() end

return rd
