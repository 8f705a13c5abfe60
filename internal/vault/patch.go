package vault

// patch sets *dst to *v unless v is nil: the update semantics of the
// inputs (GroupInput, AppInput, SobjectInput, …) whose nil fields are
// left unchanged.
func patch[T any](dst, v *T) {
	if v != nil {
		*dst = *v
	}
}
