--[[
  Adds task ids to the ready queue, in order, keeping the place of ids already queued.

  Input:
    KEYS[1] queue sorted set (member = task id, score = order)
    KEYS[2] sequence counter (string integer, shared by every put into this queue)

    ARGV[1 + 2i] task id        (i = 0 .. n-1)
    ARGV[2 + 2i] priority       integer MIN_PRIORITY..MAX_PRIORITY (0..1000), higher first

  Output:
    number of ids added (ids already present are left untouched: ZADD NX)

  A priority outside 0..1000 is an error; ids of the batch before it may have been added
  (RedisTaskQueue validates before calling, so that does not happen through it).

  Score = (MAX_PRIORITY - priority) * 2^42 + seq, so ZPOPMIN returns the highest priority
  first and, within a priority, the id put first (FIFO). Bounds: priority is 0..1000 and
  seq is 1..2^42-1 (4.4e12 puts), so the largest score is 1001 * 2^42 - 1 < 2^53: every
  score is an exact double, in Lua and in the sorted set. The script refuses to go past
  2^42 rather than lose ordering. Scores are formatted with %.0f because Lua's tostring
  would round large numbers to 14 significant digits.

  One INCRBY reserves the whole batch's sequence numbers, so a batch's ids are
  contiguous and keep the order given. The counter is never reset by the queue; it must
  not be evicted (run Redis with maxmemory-policy noeviction).
]]
local n = #ARGV / 2
if n == 0 then
  return 0
end
local MAX_PRIORITY = 1000
local SEQ_LIMIT = 4398046511104 -- 2^42

local last = redis.call('INCRBY', KEYS[2], n)
if last >= SEQ_LIMIT then
  return redis.error_reply('ERR queue sequence exhausted (>= 2^42); rebuild under a new key')
end
local seq = last - n

-- One ZADD per slice of members (unpack has a stack limit of a few thousand values).
local SLICE = 500
local added = 0
local args = { 'NX' }
for i = 1, #ARGV, 2 do
  local priority = tonumber(ARGV[i + 1])
  if priority == nil or priority ~= math.floor(priority) or priority < 0 or priority > MAX_PRIORITY then
    return redis.error_reply('ERR priority must be an integer in 0..1000, got ' .. tostring(ARGV[i + 1]))
  end
  seq = seq + 1
  args[#args + 1] = string.format('%.0f', (MAX_PRIORITY - priority) * SEQ_LIMIT + seq)
  args[#args + 1] = ARGV[i]
  if #args > 2 * SLICE then
    added = added + redis.call('ZADD', KEYS[1], unpack(args))
    args = { 'NX' }
  end
end
if #args > 1 then
  added = added + redis.call('ZADD', KEYS[1], unpack(args))
end
return added
