--[[
  Last step of a rebuild: replaces the queue with the staging set, atomically for readers.

  Input:
    KEYS[1] staging sorted set, filled by queue-put.lua (may not exist when empty)
    KEYS[2] queue sorted set

    ARGV[1] number of distinct ids the staging set must hold

  Output:
    number of ids now in the queue, or an error (queue untouched, staging deleted) when
    the staging set does not hold exactly ARGV[1] ids (e.g. it expired mid-rebuild).

  RENAME keeps the source key's TTL, and the staging set carries one so that an
  abandoned rebuild does not leak: PERSIST removes it from the live queue.
]]
local expected = tonumber(ARGV[1])
local staged = redis.call('ZCARD', KEYS[1])
if staged ~= expected then
  redis.call('DEL', KEYS[1])
  return redis.error_reply('ERR rebuild staging set holds ' .. staged .. ' ids, expected ' .. expected)
end
if expected == 0 then
  redis.call('DEL', KEYS[2])
  return 0
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PERSIST', KEYS[2])
return expected
