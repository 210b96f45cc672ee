package webhook

import (
	"encoding/json"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/vigilsec/vigil/webhook/store"
)

// ProfilesPage is the answer of GET /v1/profiles?since=N[&limit=M]:
// profiles recorded after sequence N, and the sequence to ask from next.
// A rollout's profiles are never split across pages.
type ProfilesPage struct {
	Next     uint64                `json:"next"`
	Profiles []store.StoredProfile `json:"profiles"`
}

// WindowsPage is the answer of GET /v1/windows?since=N[&open=true]: release
// windows recorded after sequence N, only those open now when open is set.
type WindowsPage struct {
	Windows []store.StoredWindow `json:"windows"`
}

const maxPage = 1000

func (s *Server) apiProfiles(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		s.fail(ctx, fasthttp.StatusMethodNotAllowed, "method", "GET only")
		return
	}
	args := ctx.QueryArgs()
	since, ok := s.uintArg(ctx, args, "since", 0)
	if !ok {
		return
	}
	limit, ok := s.uintArg(ctx, args, "limit", maxPage)
	if !ok {
		return
	}
	ps, next, err := s.store.Profiles(since, int(min(limit, maxPage)))
	if err != nil {
		ctx.Error("store: "+err.Error(), fasthttp.StatusServiceUnavailable)
		return
	}
	if ps == nil {
		ps = []store.StoredProfile{}
	}
	writeJSON(ctx, ProfilesPage{Next: next, Profiles: ps})
}

func (s *Server) apiWindows(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		s.fail(ctx, fasthttp.StatusMethodNotAllowed, "method", "GET only")
		return
	}
	args := ctx.QueryArgs()
	since, ok := s.uintArg(ctx, args, "since", 0)
	if !ok {
		return
	}
	open := false
	if v := args.Peek("open"); len(v) > 0 {
		b, err := strconv.ParseBool(string(v))
		if err != nil {
			s.fail(ctx, fasthttp.StatusBadRequest, "query", "open: "+err.Error())
			return
		}
		open = b
	}
	ws, err := s.store.Windows(since, open, s.cfg.Now())
	if err != nil {
		ctx.Error("store: "+err.Error(), fasthttp.StatusServiceUnavailable)
		return
	}
	if ws == nil {
		ws = []store.StoredWindow{}
	}
	writeJSON(ctx, WindowsPage{Windows: ws})
}

func (s *Server) uintArg(ctx *fasthttp.RequestCtx, args *fasthttp.Args, name string, def uint64) (uint64, bool) {
	v := args.Peek(name)
	if len(v) == 0 {
		return def, true
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		s.fail(ctx, fasthttp.StatusBadRequest, "query", name+": "+err.Error())
		return 0, false
	}
	return n, true
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
