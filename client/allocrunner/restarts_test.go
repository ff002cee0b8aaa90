package allocrunner

import (
	"testing"
	"time"

	"github.com/skiffhq/skiff/client/state"
	"github.com/skiffhq/skiff/structs"
)

func TestDecideRestart(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	noJitter := func(time.Duration) time.Duration { return 0 }
	fail := &structs.RestartPolicy{Attempts: 2, Interval: time.Minute, Delay: time.Second, Mode: structs.RestartModeFail}
	delay := &structs.RestartPolicy{Attempts: 1, Interval: time.Minute, Delay: time.Second, Mode: structs.RestartModeDelay}
	type end struct {
		at      time.Duration // after t0
		success bool
	}
	tests := []struct {
		name      string
		policy    *structs.RestartPolicy
		completes bool
		ends      []end
		want      restartDecision // of the last end, reason ignored
	}{
		{"first failure restarts", fail, false, []end{{0, false}}, restartDecision{restart: true, delay: time.Second}},
		{"attempts exhausted fails", fail, false, []end{{0, false}, {1, false}, {2, false}}, restartDecision{failed: true}},
		{"success of a service task counts", fail, false, []end{{0, true}, {1, true}, {2, true}}, restartDecision{failed: true}},
		{"success of a batch task completes", fail, true, []end{{0, true}}, restartDecision{}},
		{"new interval resets the count", fail, false,
			[]end{{0, false}, {1, false}, {2 * time.Minute, false}}, restartDecision{restart: true, delay: time.Second}},
		{"delay mode waits for the interval", delay, false,
			[]end{{0, false}, {10 * time.Second, false}}, restartDecision{restart: true, delay: 50 * time.Second}},
		{"delay mode then counts again", delay, false,
			[]end{{0, false}, {10 * time.Second, false}, {61 * time.Second, false}}, restartDecision{restart: true, delay: time.Second}},
		{"no attempts", &structs.RestartPolicy{Mode: structs.RestartModeFail, Interval: time.Minute}, false,
			[]end{{0, false}}, restartDecision{failed: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st state.RestartState
			var got restartDecision
			for _, e := range tt.ends {
				got = decideRestart(tt.policy, tt.completes, e.success, &st, t0.Add(e.at), noJitter)
			}
			got.reason = ""
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestJitterIsBounded(t *testing.T) {
	for range 100 {
		if j := randomJitter(time.Second); j < 0 || j >= 250*time.Millisecond {
			t.Fatalf("jitter %s out of [0, 250ms)", j)
		}
	}
	if j := randomJitter(0); j != 0 {
		t.Errorf("jitter of 0: got %s", j)
	}
}
