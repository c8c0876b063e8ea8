package logout

import "time"

// Tests move the stores' clocks with these; nothing outside the tests can.

func SetRedisStoreClock(s *RedisStore, now func() time.Time) { s.now = now }

func SetCookieStoreClock(s SessionStore, now func() time.Time) {
	switch c := s.(type) {
	case *CookieStore:
		c.now = now
	case *RevocableCookieStore:
		c.now = now
	default:
		panic("SetCookieStoreClock: not a cookie store")
	}
}
