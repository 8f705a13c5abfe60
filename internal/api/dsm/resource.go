package dsm

import (
	"cmp"
	"context"
	"net/http"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// resource is the wiring of one kind of DSM object that is created from a
// JSON body and read, updated and deleted by the id in its path (groups,
// apps, security objects, integration credentials, users): its handlers
// have one shape, written once here, around the core's method for each.
type resource[I, T any] struct {
	param  string                         // the path parameter naming the object, e.g. "group_id"
	input  func(*http.Request) (I, error) // the request body as the core's input
	render func(*http.Request, T) any     // the response body for the core's object
	// created is the status of a create: 201 for security objects, as
	// DSM answers them (MinIO KES treats anything else as a failure to
	// create); 0, 200 for the others.
	created int
}

// create serves a POST (or PUT) of a new object.
func (res resource[I, T]) create(create func(context.Context, *vault.Identity, I) (T, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
		in, err := res.input(r)
		if err != nil {
			return err
		}
		o, err := create(r.Context(), id, in)
		return res.write(w, r, cmp.Or(res.created, http.StatusOK), o, err)
	}
}

// get serves GET …/{param}.
func (res resource[I, T]) get(get func(context.Context, *vault.Identity, string) (T, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
		oid, err := pathUUID(r, res.param)
		if err != nil {
			return err
		}
		o, err := get(r.Context(), id, oid)
		return res.write(w, r, http.StatusOK, o, err)
	}
}

// update serves PATCH …/{param}.
func (res resource[I, T]) update(update func(context.Context, *vault.Identity, string, I) (T, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
		oid, err := pathUUID(r, res.param)
		if err != nil {
			return err
		}
		in, err := res.input(r)
		if err != nil {
			return err
		}
		o, err := update(r.Context(), id, oid, in)
		return res.write(w, r, http.StatusOK, o, err)
	}
}

// delete serves DELETE …/{param}: 204 No Content.
func (res resource[I, T]) delete(del func(context.Context, *vault.Identity, string) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
		oid, err := pathUUID(r, res.param)
		if err != nil {
			return err
		}
		return httpx.NoContent(w, del(r.Context(), id, oid))
	}
}

// collection mounts the five routes of a kind whose objects live under
// base: the listing and create at base, and get, update and delete of one
// object at base/{param}. Every route is authenticated.
func (res resource[I, T]) collection(mux *http.ServeMux, auth func(handlerFunc) http.Handler, base string,
	list handlerFunc,
	create func(context.Context, *vault.Identity, I) (T, error),
	get func(context.Context, *vault.Identity, string) (T, error),
	update func(context.Context, *vault.Identity, string, I) (T, error),
	del func(context.Context, *vault.Identity, string) error,
) {
	one := base + "/{" + res.param + "}"
	mux.Handle("GET "+base, auth(list))
	mux.Handle("POST "+base, auth(res.create(create)))
	mux.Handle("GET "+one, auth(res.get(get)))
	mux.Handle("PATCH "+one, auth(res.update(update)))
	mux.Handle("DELETE "+one, auth(res.delete(del)))
}

// write renders o with status, or returns the core's error.
func (res resource[I, T]) write(w http.ResponseWriter, r *http.Request, status int, o T, err error) error {
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, status, res.render(r, o))
	return nil
}

// body returns a reader of a required JSON request body: decoded into a Q
// (DSM's request type) and converted to the core's input by input.
func body[Q, I any](h *handlers, input func(*Q) (I, error)) func(*http.Request) (I, error) {
	return func(r *http.Request) (I, error) {
		var q Q
		if _, err := h.readJSON(r, &q, true); err != nil {
			var zero I
			return zero, err
		}
		return input(&q)
	}
}
