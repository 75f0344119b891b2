-- wrk script of `make soak` (benches/soak.py writes the plan it reads and the phase file).
--
-- Run as `wrk -tN -cN -s benches/soak.lua URL -- <plan> <phase> <N>`: one connection per wrk
-- thread, so a thread's requests and responses alternate (wrk does not pipeline) and every
-- response is checked against the expectation recorded when its request was made.
--
-- Plan lines (tab-separated): class, path, expected status, expected reason ("-" for 200),
-- token source, weight. A token source is a file of tokens (one per line; each thread cycles
-- through its own slice), "-" for no token, or "rot_valid" / "rot_retired": the token files the
-- phase file names at the moment of the request (the key the IdP serves and every VM has, and
-- a key no VM has any more). The phase file is re-read every 100 ms; benches/soak.py changes it
-- only when both answers are certain, and keeps an old expectation true for longer than wrk's
-- timeout after it stops being used (see the guard there).
--
-- Checked per response: the status; for a refusal, the reason in the JSON body; for a 200, the
-- body of the upstream listener of that class ("upstream <class>", so the request went where
-- its route sends it), the token removed before the upstream (x-soak-authorization echoed by
-- the upstream must be absent), and for the dry-run class the x-jwt-guard-dry-run header the
-- upstream saw. done() prints one line per thread and class, and the wrong answers seen.

local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } soak_timespec;
  int clock_gettime(int clk_id, soak_timespec *tp);
]]
local ts = ffi.new("soak_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local function split(line)
  local out = {}
  for field in string.gmatch(line, "[^\t]+") do out[#out + 1] = field end
  return out
end

local function read_lines(path)
  local out = {}
  for line in io.lines(path) do
    if #line > 0 then out[#out + 1] = line end
  end
  return out
end

local classes, mix = {}, {}
local phase_path, phase_read_at = nil, -1e9
local phase = {}           -- rot_valid / rot_retired -> token file
local rot_lists = {}       -- token file -> tokens (loaded on first use)
local rot_pos = 0
local step = 0
local pending = nil        -- the class of the request on the wire
local nthreads = 1

-- Globals read back by done() (thread:get): numbers, strings and flat tables only. `calls`
-- counts request() calls, which can exceed the requests sent (see request()).
calls, answered, unmatched = 0, 0, 0
pending_class = ""
results = {}               -- "class" -> "ok wrong s5xx"
wrong_samples = {}         -- up to 10 strings

local function read_phase()
  local f = io.open(phase_path, "r")
  if not f then return end
  for line in f:lines() do
    local kind, file = line:match("^(%S+)%s+(%S+)$")
    if kind then phase[kind] = file end
  end
  f:close()
end

local function tokens_of(file)
  local list = rot_lists[file]
  if not list then
    list = read_lines(file)
    rot_lists[file] = list
  end
  return list
end

function init(args)
  local plan_path = args[1]
  phase_path = args[2]
  nthreads = tonumber(args[3]) or 1
  for line in io.lines(plan_path) do
    local f = split(line)
    if #f == 6 then
      local c = {name = f[1], path = f[2], status = tonumber(f[3]), reason = f[4], source = f[5],
                 weight = tonumber(f[6]), pos = 0, ok = 0, wrong = 0, s5xx = 0}
      c.needle = '"reason":"' .. c.reason .. '"'
      c.body = "upstream " .. c.name
      if c.source ~= "-" and c.source ~= "rot_valid" and c.source ~= "rot_retired" then
        -- This thread's slice of the file: threads never share a token of a pool, so a
        -- "new token" is new to the cache of whichever worker the thread's connection is on.
        local all = read_lines(c.source)
        local per = math.floor(#all / nthreads)
        c.tokens = {}
        if per >= 1 then
          for i = thread_id * per + 1, (thread_id + 1) * per do c.tokens[#c.tokens + 1] = all[i] end
        else
          c.tokens = all
        end
      end
      classes[#classes + 1] = c
    end
  end
  -- A smooth weighted round robin: each class spread evenly over a cycle of sum(weights).
  local total = 0
  for _, c in ipairs(classes) do total = total + c.weight end
  local credit = {}
  for i = 1, #classes do credit[i] = 0 end
  for _ = 1, total do
    local best = 1
    for i, c in ipairs(classes) do
      credit[i] = credit[i] + c.weight
      if credit[i] > credit[best] then best = i end
    end
    credit[best] = credit[best] - total
    mix[#mix + 1] = best
  end
  step = thread_id * 7
  read_phase()
end

function request()
  local t = now_ms()
  if t - phase_read_at >= 100 then
    read_phase()
    phase_read_at = t
  end
  local c = classes[mix[(step % #mix) + 1]]
  step = step + 1
  local list = c.tokens
  if c.source == "rot_valid" or c.source == "rot_retired" then
    list = tokens_of(phase[c.source])
  end
  local headers = {}
  if list then
    local i
    if c.tokens then
      i = (c.pos % #list) + 1
      c.pos = c.pos + 1
    else
      i = (rot_pos % #list) + 1
      rot_pos = rot_pos + 1
    end
    headers["Authorization"] = "Bearer " .. list[i]
  end
  -- wrk calls request() again when a write would block before any byte went out, and sends
  -- the newer request: the expectation is always the last one made.
  pending = c
  pending_class = c.name
  calls = calls + 1
  return wrk.format("GET", c.path, headers)
end

local function right(c, status, headers, body)
  if status ~= c.status then return false end
  if status ~= 200 then
    return body ~= nil and string.find(body, c.needle, 1, true) ~= nil
  end
  if body ~= c.body then return false end
  if c.name == "dry_run" then
    return headers["x-soak-dry-run"] == "401 bad_signature"
  end
  return headers["x-soak-authorization"] == nil
end

function response(status, headers, body)
  local c = pending
  pending = nil
  pending_class = ""
  if c == nil then
    unmatched = unmatched + 1
    return
  end
  answered = answered + 1
  if status >= 500 then c.s5xx = c.s5xx + 1 end
  if right(c, status, headers, body) then
    c.ok = c.ok + 1
  else
    c.wrong = c.wrong + 1
    if #wrong_samples < 10 then
      local excerpt = string.gsub(string.sub(body or "", 1, 160), "%s+", " ")
      wrong_samples[#wrong_samples + 1] = string.format("%s: got %d %s", c.name, status, excerpt)
    end
  end
  results[c.name] = string.format("%d %d %d", c.ok, c.wrong, c.s5xx)
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local id = thread:get("thread_id")
    io.write(string.format("soak-lua: thread=%d calls=%d answered=%d unmatched=%d pending=%s\n",
      id, thread:get("calls"), thread:get("answered"), thread:get("unmatched"),
      (thread:get("pending_class") ~= "" and thread:get("pending_class")) or "-"))
    for name, line in pairs(thread:get("results")) do
      io.write(string.format("soak-lua: thread=%d class=%s %s\n", id, name, line))
    end
    for _, sample in ipairs(thread:get("wrong_samples")) do
      io.write(string.format("soak-lua: thread=%d wrong %s\n", id, sample))
    end
  end
end
