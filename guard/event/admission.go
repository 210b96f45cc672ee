package event

// admissionFields are the fields of admission events (ids 1000–1999): a
// Kubernetes object under review, flattened so that admission rules read it
// through the same ABI as kernel events. Owned by the webhook.
var admissionFields = []Field{}
