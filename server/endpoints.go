package server

// endpoints returns the net/rpc services this server registers, by name.
// Every method has the net/rpc shape func(args *A, reply *R) error.
func (s *Server) endpoints() map[string]any {
	return map[string]any{
		"Status":     &Status{srv: s},
		"Job":        &Job{srv: s},
		"Deployment": &Deployment{srv: s},
		"Eval":       &Eval{srv: s},
		"Alloc":      &Alloc{srv: s},
		"Node":       &Node{srv: s},
		"Operator":   &Operator{srv: s},
		"Plan":       &Plan{srv: s},
	}
}
