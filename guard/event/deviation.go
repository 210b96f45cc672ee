package event

// deviationFields are behavior-detection fields (ids 2000–2999). Owned by
// guard/baseline.
var deviationFields = []Field{}
