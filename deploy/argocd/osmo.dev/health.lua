-- Argo CD health of osmo's InstanceMigration and ComputeNodeDrain (Lua 5.1, as Argo CD runs
-- it); <Kind>/health.lua link here, beside each kind's health_test.yaml and testdata.
--   InstanceMigration: Healthy when Succeeded; Degraded when Failed.
--   ComputeNodeDrain: Healthy when Drained or Retired; Suspended when Planned (a dry run, or
--   paused); Degraded when Blocked (needs help: the message says what remains) or Failed.
-- Progressing otherwise: a phase of work under way (RollingBack included), a generation the
-- operator has not acted on yet, or a deletion waiting for the finalizer (the operator rolls
-- back or finishes what it started first).
local hs = {}
local status = obj.status or {}

-- Each phase that is not work under way: its health, and the condition whose message explains it.
local healthByPhase = ({
  InstanceMigration = {
    Succeeded = {"Healthy", "Ready"},
    Failed = {"Degraded", "Failed"},
  },
  ComputeNodeDrain = {
    Drained = {"Healthy", "Ready"},
    Retired = {"Healthy", "Ready"},
    Planned = {"Suspended", "Progressing"},
    Blocked = {"Degraded", "Ready"},
    Failed = {"Degraded", "Failed"},
  },
})[obj.kind] or {}

-- "Phase [progress] (reason): message", from the condition that explains the phase.
local function describe(conditionType)
  local text = status.phase
  if status.progress ~= nil then
    text = text .. " " .. status.progress
  end
  for _, c in ipairs(status.conditions or {}) do
    if c.type == conditionType and c.message ~= nil and c.message ~= "" then
      if c.reason ~= status.phase then
        text = text .. " (" .. c.reason .. ")"
      end
      return text .. ": " .. c.message
    end
  end
  return text
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deletion pending on finalizers (" .. table.concat(obj.metadata.finalizers or {}, ", ") ..
    "); phase " .. (status.phase or "not started")
elseif status.observedGeneration == nil or status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for osmo to act on generation " .. obj.metadata.generation
else
  local health = healthByPhase[status.phase] or {"Progressing", "Progressing"}
  hs.status = health[1]
  hs.message = describe(health[2])
end
return hs
