package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/vigilsec/vigil/webhook/store"
)

// Client reads profiles and release windows from a webhook for a node guard
// (guard/baseline). It keeps its own position in the profile stream, so
// repeated Poll calls return only what is new.
type Client struct {
	base *url.URL
	http *http.Client
	next uint64
}

// NewClient returns a client for the webhook at baseURL ("https://host:port")
// trusting the PEM CA in caFile (the webhook's --self-signed ca.crt or the
// cluster's serving CA).
func NewClient(baseURL, caFile string) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("webhook url: %w", err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("webhook url %q: https only", baseURL)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca %s: no certificates", caFile)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     60 * time.Second,
	}
	return &Client{base: u, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}, nil
}

// Close releases idle connections. Safe to call twice.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// Next is the sequence the next Poll starts after; a guard persists it to
// resume after a restart (SetNext).
func (c *Client) Next() uint64 { return c.next }

// SetNext moves the stream position.
func (c *Client) SetNext(seq uint64) { c.next = seq }

// Poll fetches every profile recorded since the last Poll, following pages.
func (c *Client) Poll(ctx context.Context) ([]store.StoredProfile, error) {
	var all []store.StoredProfile
	for {
		var page ProfilesPage
		if err := c.get(ctx, "/v1/profiles", url.Values{"since": {strconv.FormatUint(c.next, 10)}}, &page); err != nil {
			return all, err
		}
		all = append(all, page.Profiles...)
		if page.Next == c.next || len(page.Profiles) == 0 {
			return all, nil
		}
		c.next = page.Next
	}
}

// Windows fetches release windows recorded after since; openOnly keeps those
// open now.
func (c *Client) Windows(ctx context.Context, since uint64, openOnly bool) ([]store.StoredWindow, error) {
	var page WindowsPage
	q := url.Values{"since": {strconv.FormatUint(since, 10)}, "open": {strconv.FormatBool(openOnly)}}
	err := c.get(ctx, "/v1/windows", q, &page)
	return page.Windows, err
}

// ErrStatus is wrapped when the webhook answers with a non-200 status.
var ErrStatus = errors.New("webhook: unexpected status")

func (c *Client) get(ctx context.Context, path string, q url.Values, into any) error {
	u := *c.base
	u.Path = path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s: %d %s", ErrStatus, path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}
