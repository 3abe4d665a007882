"""Print '--steps N' per run so that all runs end at time END (epoch s), from each run's rate so far."""
import json, sys, time
end, runs = float(sys.argv[1]), sys.argv[2:]
for r in runs:
    h = json.load(open(f"runs/gpu/{r}/history.json"))
    step, wall = h["step"], h["history"]["wall_time"]
    rate = step / wall
    n = int(step + 0.88 * rate * (end - time.time()))
    n = max(n // 100 * 100, 2 * step + 200)
    print(r, n, f"{rate:.2f}it/s", file=sys.stderr)
    print(f"{r} {n}")
