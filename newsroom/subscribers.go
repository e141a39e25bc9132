package newsroom

import (
	"context"

	"newsletter/editors"
	"newsletter/subscribers"
)

// Person is a subscriber with their consent history.
type Person struct {
	*subscribers.Subscriber
	Consents []subscribers.Consent `json:"consents"`
}

// FindSubscriber finds the person with that address, however it is spelt;
// subscribers.ErrNotFound when there is none.
func (r *Room) FindSubscriber(ctx context.Context, email string) (*Person, error) {
	if email == "" {
		return nil, invalid("email", "give the address to find")
	}
	sub, err := r.Subscribers.ByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	cs, err := r.Subscribers.Consents(ctx, sub.ID)
	if err != nil {
		return nil, err
	}
	return &Person{Subscriber: sub, Consents: cs}, nil
}

// AddSubscriber puts a person on the list, as an editor does.
func (r *Room) AddSubscriber(ctx context.Context, a Actor, email, name string, status subscribers.Status) (*subscribers.Subscriber, error) {
	if a.Role != editors.Admin {
		return nil, ErrForbidden
	}
	if _, err := subscribers.NormalizeAddress(email); err != nil {
		return nil, invalid("email", "%v", err)
	}
	if err := subscribers.CheckName(name); err != nil {
		return nil, invalid("name", "%v", err)
	}
	sub, err := r.Subscribers.Add(ctx, email, name, status)
	if err != nil {
		return nil, err
	}
	return sub, r.audit(ctx, a, "subscriber.add", sub.Email, "status "+string(status))
}

// Unsubscribe takes a person off the list at once (the send skips them even
// when queued); it reports whether anything changed.
func (r *Room) Unsubscribe(ctx context.Context, a Actor, email string) (bool, error) {
	if a.Role != editors.Admin {
		return false, ErrForbidden
	}
	sub, err := r.Subscribers.ByEmail(ctx, email)
	if err != nil {
		return false, err
	}
	changed, err := r.Subscribers.UnsubscribeBy(ctx, sub, subscribers.Source{Method: subscribers.MethodEditor, IP: a.IP})
	if err != nil || !changed {
		return changed, err
	}
	return true, r.audit(ctx, a, "subscriber.unsubscribe", sub.Email, "")
}
