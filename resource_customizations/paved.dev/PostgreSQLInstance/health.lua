-- Argo CD health check for paved.dev/PostgreSQLInstance.
-- Ready means the database accepts the credentials Paved delivered.
--
-- Healthy: Ready=True, written for the current generation.
-- Degraded: Synced=False, Paved could not apply the spec (reason: message).
-- Progressing: everything else (no status yet, a generation not yet observed, not ready).
-- Runs without the string library (Argo CD's default for resource.customizations).
local hs = {}

local function find(conditions, kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c, default)
  local reason = c.reason
  local message = c.message
  if reason == "" then reason = nil end
  if message == "" then message = nil end
  if reason ~= nil and message ~= nil then
    return reason .. ": " .. message
  end
  return message or reason or default
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

-- Status written for an older generation says nothing about the current spec.
-- Compared as text: a number may reach the script as a string.
local function stale(observed)
  return observed ~= nil and generation ~= nil and tostring(observed) ~= tostring(generation)
end

local function result(status, message)
  hs.status = status
  hs.message = message
  return hs
end

local status = obj.status
if status == nil or status.conditions == nil then
  return result("Progressing", "Waiting for Paved to reconcile")
end
local observing = "Waiting for Paved to observe generation " .. tostring(generation)
if stale(status.observedGeneration) then
  return result("Progressing", observing)
end

local synced = find(status.conditions, "Synced")
local ready = find(status.conditions, "Ready")

if synced ~= nil and synced.status == "False" and not stale(synced.observedGeneration) then
  return result("Degraded", describe(synced, "Paved could not reconcile this resource"))
end

if ready == nil then
  return result("Progressing", "Waiting for Paved to reconcile")
end
if stale(ready.observedGeneration) then
  return result("Progressing", observing)
end
if ready.status == "True" then
  local message = ready.message
  if message == nil or message == "" then
    message = "Ready"
  end
  return result("Healthy", message)
end
return result("Progressing", describe(ready, "Waiting for Paved to reconcile"))
