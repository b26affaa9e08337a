package queuetest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"eventrelay/internal/queue"
)

// Delivery is one request the target received.
type Delivery struct {
	At     time.Time
	Name   string // X-CloudTasks-TaskName
	Retry  int    // X-CloudTasks-TaskRetryCount, -1 if missing or bad
	Header http.Header
	Body   []byte
	Status int // what the target answered
}

// Reply is what the target answers to one delivery.
type Reply struct {
	Status     int
	RetryAfter string
}

// target is an httptest server that records every delivery and answers as
// its respond hook says (200 when nil).
type target struct {
	srv *httptest.Server

	mu          sync.Mutex
	got         []Delivery
	perName     map[string]int
	inFlight    int
	maxInFlight int
	respond     func(r *http.Request, d Delivery, n int) Reply // n counts this name's deliveries from 0
}

func newTarget(t testing.TB, respond func(r *http.Request, d Delivery, n int) Reply) *target {
	t.Helper()
	tg := &target{perName: make(map[string]int), respond: respond}
	tg.srv = httptest.NewServer(http.HandlerFunc(tg.serve))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *target) URL() string { return tg.srv.URL + "/tasks" }

func (tg *target) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, _ := io.ReadAll(r.Body)
	d := Delivery{At: at, Name: r.Header.Get(queue.HeaderTaskName), Header: r.Header.Clone(), Body: body, Retry: -1}
	if n, err := strconv.Atoi(r.Header.Get(queue.HeaderRetryCount)); err == nil {
		d.Retry = n
	}
	tg.mu.Lock()
	n := tg.perName[d.Name]
	tg.perName[d.Name]++
	tg.inFlight++
	tg.maxInFlight = max(tg.maxInFlight, tg.inFlight)
	tg.mu.Unlock()

	reply := Reply{Status: http.StatusOK}
	if tg.respond != nil {
		reply = tg.respond(r, d, n)
	}
	d.Status = reply.Status

	tg.mu.Lock()
	tg.inFlight--
	tg.got = append(tg.got, d)
	tg.mu.Unlock()
	if reply.RetryAfter != "" {
		w.Header().Set("Retry-After", reply.RetryAfter)
	}
	w.WriteHeader(reply.Status)
}

// deliveries returns a copy of the deliveries answered so far, in the order
// they arrived.
func (tg *target) deliveries() []Delivery {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	out := append([]Delivery(nil), tg.got...)
	sortByArrival(out)
	return out
}

// arrived counts requests that reached the handler, answered or not.
func (tg *target) arrived() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	n := 0
	for _, c := range tg.perName {
		n += c
	}
	return n
}

// arrivedFor counts the requests for one task name that reached the
// handler, answered or not.
func (tg *target) arrivedFor(name string) int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.perName[name]
}

func (tg *target) peak() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.maxInFlight
}

func sortByArrival(ds []Delivery) {
	slices.SortStableFunc(ds, func(a, b Delivery) int { return a.At.Compare(b.At) })
}
