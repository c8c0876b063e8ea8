// SPDX-License-Identifier: Apache-2.0

// Command gin mounts the logout handler in a Gin app. It is a module of its
// own, so Gin never becomes a dependency of package logout.
package main

import (
	"context"
	"crypto/rand"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/endsession/logout"
)

// newRouter mounts h at POST /logout, like any other route; gin.WrapH hands
// the request to the handler untouched. Every route runs behind the
// handler's middleware, which loads the session once and renews it for the
// idle timeout.
func newRouter(h *logout.Handler) *gin.Engine {
	r := gin.New()
	r.Use(sessions(h))
	r.POST("/logout", gin.WrapH(h))
	r.GET("/logout", gin.WrapH(h)) // answered 405 unless Config.AllowGET
	r.GET("/me", func(c *gin.Context) {
		s, err := logout.SessionFromContext(c.Request.Context())
		if err != nil {
			c.String(401, "signed out")
			return
		}
		c.String(200, s.Email)
	})
	return r
}

// sessions turns the handler's net/http middleware into a Gin one: the rest
// of the chain runs inside it, on the request it hands down.
func sessions(h *logout.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.Request = r
			c.Next()
		})).ServeHTTP(c.Writer, c.Request)
	}
}

func main() {
	key := make([]byte, 32)
	rand.Read(key)
	store, err := logout.NewCookieStore(key)
	if err != nil {
		log.Fatal(err)
	}
	h, err := logout.New(context.Background(), logout.Config{
		Store:                 store,
		Issuer:                os.Getenv("SCALEKIT_ENVIRONMENT_URL"),
		ClientID:              os.Getenv("SCALEKIT_CLIENT_ID"),
		PostLogoutRedirectURI: "http://localhost:8080/logged-out",
		Cookie:                logout.CookieConfig{InsecureHTTP: true},
		IdleTimeout:           15 * time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(newRouter(h).Run("localhost:8080"))
}
