"""One router per resource; :mod:`searchflow.api.main` mounts them all."""
