// A net/http server as a Go user would write one for systemd: the sockets
// from github.com/coreos/go-systemd/activation, READY=1 with daemon.SdNotify,
// and a graceful stop on SIGTERM (http.Server.Shutdown) after a short
// close-grace that answers with "Connection: close", so that keep-alive
// clients are not caught sending on a connection the server closes.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/activation"
	"github.com/coreos/go-systemd/daemon"
)

func main() {
	listeners, err := activation.Listeners()
	if err != nil || len(listeners) == 0 {
		fmt.Fprintln(os.Stderr, "goserver: no socket from LISTEN_FDS:", err)
		os.Exit(1)
	}
	var closing atomic.Bool
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := fmt.Sprintf("pid=%d\n", os.Getpid())
		if closing.Load() {
			w.Header().Set("Connection", "close")
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	})}

	done := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		closing.Store(true)
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		close(done)
	}()

	// The socket already listens: connections wait in its backlog until
	// Serve accepts them, so READY=1 can go out before.
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); !ok {
		fmt.Fprintln(os.Stderr, "goserver: READY=1 not sent:", err)
	}
	if err := srv.Serve(listeners[0]); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "goserver:", err)
		os.Exit(1)
	}
	<-done
}
