package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/credvault/credvault/client"
)

// Store a credential and read its payload back.
func Example() {
	ctx := context.Background()
	c, err := client.New(os.Getenv("CREDVAULT_URL"), os.Getenv("CREDVAULT_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	cred, err := c.Credentials.Create(ctx, client.CreateParams{
		Type:        client.TypeKey,
		Name:        "example-openai",
		Description: "OpenAI, production",
		Payload:     "sk-example-123",
		Metadata:    map[string]any{"team": "ml"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cred.Name, cred.Type, cred.Metadata["team"])

	secret, err := c.Credentials.DecryptByName(ctx, "example-openai")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("formatted:", secret)       // a Secret redacts itself
	fmt.Println("payload:", string(secret)) // string(secret) is the payload
	// Output:
	// example-openai key ml
	// formatted: [REDACTED]
	// payload: sk-example-123
}

// Iterate over every credential, page by page.
func ExampleCredentialsService_All() {
	ctx := context.Background()
	c, err := client.New(os.Getenv("CREDVAULT_URL"), os.Getenv("CREDVAULT_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range []string{"all-a", "all-b", "all-c"} {
		if _, err := c.Credentials.Create(ctx, client.CreateParams{Type: client.TypeKey, Name: name, Payload: "x"}); err != nil {
			log.Fatal(err)
		}
	}
	// Two per page: All fetches the next page as the loop needs it.
	for cred, err := range c.Credentials.All(ctx, client.ListParams{Limit: 2, SortBy: "name"}) {
		if err != nil {
			log.Fatal(err)
		}
		if len(cred.Name) > 4 && cred.Name[:4] == "all-" {
			fmt.Println(cred.Name)
		}
	}
	// Output:
	// all-a
	// all-b
	// all-c
}

// Errors from the API carry the status, the API's detail and the request
// id, and match sentinels with errors.Is.
func ExampleError() {
	ctx := context.Background()
	c, err := client.New(os.Getenv("CREDVAULT_URL"), os.Getenv("CREDVAULT_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Credentials.GetByName(ctx, "no-such-credential")
	fmt.Println(errors.Is(err, client.ErrNotFound))
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Detail, apiErr.RequestID != "")
	}
	// Output:
	// true
	// 404 credential not found true
}

// Update a credential's payload (rotation) and description.
func ExampleCredentialsService_Update() {
	ctx := context.Background()
	c, err := client.New(os.Getenv("CREDVAULT_URL"), os.Getenv("CREDVAULT_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	cred, err := c.Credentials.Create(ctx, client.CreateParams{Type: client.TypeJSON, Name: "example-sa", Payload: `{"v":1}`})
	if err != nil {
		log.Fatal(err)
	}
	payload, desc := client.Secret(`{"v":2}`), "rotated"
	if _, err := c.Credentials.Update(ctx, cred.ID, client.UpdateParams{Payload: &payload, Description: &desc}); err != nil {
		log.Fatal(err)
	}
	secret, err := c.Credentials.Decrypt(ctx, cred.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(secret))
	if err := c.Credentials.Delete(ctx, cred.ID); err != nil {
		log.Fatal(err)
	}
	_, err = c.Credentials.Get(ctx, cred.ID)
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output:
	// {"v":2}
	// true
}
