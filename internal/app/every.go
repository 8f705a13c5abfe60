package app

import (
	"context"
	"time"
)

// every runs tick in a goroutine every interval (and, with atOnce, once
// at the start) until stop is called or parent ends. stop cancels tick's
// context and waits for a running tick to return: the shape of the
// server's background pollers.
func every(parent context.Context, interval time.Duration, atOnce bool, tick func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(parent)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		if atOnce {
			tick(ctx)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			tick(ctx)
		}
	}()
	return func() { cancel(); <-stopped }
}
