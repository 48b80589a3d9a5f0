"""A sliding-window budget in Redis: the primitive both our API limits and the Cliniko limiter use."""

import uuid

# One sorted set per identity: members are slot ids, scores the Redis server time they were
# taken. Redis's clock (not the caller's) so hosts with skewed clocks still agree. Returns
# "0" when a slot was taken, else the seconds until the oldest slot leaves the window
# (as a string: Lua numbers would be truncated to integers).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""


def take_slot(redis, key, limit, window_seconds):
    """Take a slot in the sliding window at `key` (0.0), or return the seconds until one frees.

    Redis errors propagate: each caller decides how to fail open.
    """
    args = [window_seconds, limit, uuid.uuid4().hex]
    return max(0.0, float(redis.eval(_ACQUIRE, 1, key, *args)))
