"""`make repro`: `dvc repro` with the DAG's independent stages side by side.

`dvc repro` runs one stage at a time. Much of a stage works on one core (its library imports, the
ONNX conversion, the reports), so on a small machine the other cores wait. DVC's own way to use
them is one `dvc repro` per independent branch of the DAG (it releases its repository lock while a
stage's command runs, and guards each output with a read/write lock); DVC has no scheduler for
that, so this is one: it reads the DAG from DVC and starts each stage as
``dvc --quiet --wait-for-lock repro --single-item <stage>`` once the stages it depends on have ended well,
at most ``--jobs`` at a time. DVC still decides whether a stage needs to run and records what it
ran (dvc.lock, the cache), as `dvc repro` would.

- Which ready stage goes first: the one with the longest known path of stage times to the end of
  the DAG (the times of the last run, kept in .dvc/tmp/), else dvc.yaml's order.
- How many at a time (``--jobs auto``): two on a small machine (on 2 cores, two side by side ran the
  default DAG 20 % faster than one at a time: docs/benchmarks.md), one per 4 cores on larger ones,
  and never more than the DAG's widest level has stages (the default DAG: its 4 trainings). On a
  GPU machine the stages side by side share the GPU; their imports, reports and ONNX conversions,
  which a GPU does not shorten, run on separate cores.
- The cores are shared out: each stage gets ``cores // jobs`` threads (OMP_NUM_THREADS, which torch
  reads) and counts its loader processes (``num_workers: auto``) from that share, the same for every
  stage whatever else is running, so a run's numbers do not depend on the order stages happened to
  start in. A thread count the user set is kept.
- A failed stage lets the running ones end and starts no other; the exit status is 1 and the
  failed stages are named. Ctrl+C stops them all.
- Each line a stage prints is shown with the stage's name in front; a progress bar's updates
  (carriage returns) are shown as their last state when its line ends.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

from pipeline.cli import user_errors
from pipeline.hardware import STAGE_CORES_ENV, usable_cores
from pipeline.io.workspace import RUNNER_ENV  # the workspace is claimed for the runner, not each stage's dvc

TIMES = Path(".dvc/tmp/stage-seconds.json")  # each stage's seconds in the last run (ordering only)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
AUTO_JOBS = "auto"
CORES_PER_JOB = 4  # `--jobs auto`: a stage at a time per this many cores (at least two)


@dataclass
class Dag:
    """Stages in dvc.yaml's order and, for each, the stages it depends on."""
    order: list[str]
    needs: dict[str, set[str]]

    def graph(self) -> nx.DiGraph:
        """An edge from each stage to each stage it depends on (as DVC's own graph)."""
        graph = nx.DiGraph()
        graph.add_nodes_from(self.order)
        graph.add_edges_from((name, need) for name, needs in self.needs.items() for need in needs)
        return graph

    def width(self) -> int:
        """The most stages at one depth of the DAG: how many can run side by side at most."""
        return max((len(level) for level in nx.topological_generations(self.graph())), default=1)

    def limited_to(self, targets: list[str]) -> Dag:
        """The targets and every stage they depend on (as `dvc repro <targets>`)."""
        unknown = [t for t in targets if t not in self.needs]
        if unknown:
            raise ValueError(f"no stage named {', '.join(unknown)} in dvc.yaml (the stages: {', '.join(self.order)})")
        graph = self.graph()
        keep = set(targets).union(*(nx.descendants(graph, t) for t in targets))
        return Dag([n for n in self.order if n in keep], {n: self.needs[n] & keep for n in keep})


def read_dag(root: Path) -> Dag:
    """The project's stages and their dependencies, as DVC resolves dvc.yaml (foreach, params)."""
    from dvc.repo import Repo  # DVC's own reading of dvc.yaml; no public API gives the graph

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # an edge from a stage to each stage whose outputs it reads
        stages = [s for s in repo.index.stages if s.cmd]
        names = {s: s.addressing for s in stages}
        needs = {names[s]: {names[d] for d in graph.successors(s) if d in names} for s in stages}
    return Dag([names[s] for s in stages], needs)


def critical_paths(dag: Dag, seconds: dict[str, float]) -> dict[str, float]:
    """Each stage's seconds plus the longest chain of stages after it (unknown stages count 0)."""
    graph, path = dag.graph(), {}
    for name in nx.topological_sort(graph):  # every stage before the stages it depends on
        path[name] = seconds.get(name, 0.0) + max((path[n] for n in graph.predecessors(name)), default=0.0)
    return path


@dataclass
class Running:
    process: subprocess.Popen
    started: float
    pending: bytes = b""  # the start of a line not yet ended


@dataclass
class Scheduler:
    dag: Dag
    jobs: int
    command: list[str]
    env: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)
    out = sys.stdout.buffer

    def run(self) -> tuple[list[str], dict[str, float]]:
        """Run every stage in dependency order; (failed stages, seconds of each stage that ran)."""
        rank = critical_paths(self.dag, self.seconds)
        position = {name: i for i, name in enumerate(self.dag.order)}
        waiting, done, failed, took = set(self.dag.order), set(), [], {}
        running: dict[str, Running] = {}
        selector = selectors.DefaultSelector()
        try:
            while waiting or running:
                ready = sorted((n for n in waiting if self.dag.needs[n] <= done),
                               key=lambda n: (-rank[n], position[n]))
                while ready and len(running) < self.jobs and not failed:
                    name = ready.pop(0)
                    waiting.discard(name)
                    running[name] = self.start(name, selector)
                if not running:
                    break  # a stage failed: nothing more starts
                for key, _ in selector.select(timeout=1.0):
                    self.relay(key.data, running[key.data], key.fileobj)
                for name, job in list(running.items()):
                    if job.process.poll() is None:
                        continue
                    self.relay(name, job, job.process.stdout, final=True)
                    selector.unregister(job.process.stdout)
                    job.process.stdout.close()
                    del running[name]
                    took[name] = time.monotonic() - job.started
                    if job.process.returncode == 0:
                        done.add(name)
                        self.say(f"'{name}' done in {took[name]:.1f} s")
                    else:
                        failed.append(name)
                        self.say(f"stage '{name}' failed (exit status {job.process.returncode}); "
                                 f"{'waiting for ' + ', '.join(running) if running else 'stopping'}")
        finally:
            for job in running.values():  # Ctrl+C or an error here: the stages stop with the runner
                job.process.terminate()
            for job in running.values():
                job.process.wait()
        return failed, took

    def start(self, name: str, selector) -> Running:
        self.say(f"starting '{name}'")
        process = subprocess.Popen([*self.command, name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=self.env)
        os.set_blocking(process.stdout.fileno(), False)
        selector.register(process.stdout, selectors.EVENT_READ, name)
        return Running(process, time.monotonic())

    def relay(self, name: str, job: Running, stream, final: bool = False) -> None:
        """Show the stage's ended lines, each with its name in front; of a progress bar's updates
        (each after a carriage return) only the last state of its line."""
        *lines, rest = (job.pending + (stream.read() or b"")).split(b"\n")
        if final and rest:
            lines.append(rest)
        job.pending = b"" if final else rest.rsplit(b"\r", 1)[-1]
        for line in lines:
            self.out.write(name.encode() + b" | " + line.rstrip(b"\r").rsplit(b"\r", 1)[-1].rstrip() + b"\n")
        self.out.flush()

    def say(self, message: str) -> None:
        self.out.write(f"repro: {message}\n".encode())
        self.out.flush()


def auto_jobs(cores: int, width: int) -> int:
    """``--jobs auto``: a stage at a time per 4 cores, at least two, at most ``width``."""
    return max(1, min(width, max(2, cores // CORES_PER_JOB)))


def job_count(setting: str) -> int | None:
    """``--jobs``: a count of 1 or more, or auto (None: decided from the cores and the DAG)."""
    if setting == AUTO_JOBS:
        return None
    try:
        jobs = int(setting)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"{setting!r} is not a count of stages (1 or more) or auto")
    return jobs


def stage_env(jobs: int) -> dict[str, str]:
    """Each stage's share of the cores: its torch threads and what `num_workers: auto` counts from."""
    threads = str(max(1, usable_cores() // jobs))
    env = dict(os.environ, **{RUNNER_ENV: str(os.getpid()), STAGE_CORES_ENV: threads})
    for name in THREAD_VARIABLES:
        env.setdefault(name, threads)
    return env


def load_seconds(root: Path) -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads((root / TIMES).read_text()).items()}
    except (OSError, ValueError, AttributeError):  # none yet, or unreadable: dvc.yaml's order
        return {}


@user_errors
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help="stages to reproduce with what they depend on (default: all)")
    parser.add_argument("-j", "--jobs", type=job_count, default=AUTO_JOBS,
                        help="stages at a time, or auto (default: one per 4 cores, at least 2, at most the "
                             "DAG's widest level)")
    parser.add_argument("-f", "--force", action="store_true", help="run every stage, changed or not")
    args = parser.parse_args(argv)
    root = Path.cwd()
    dag = read_dag(root)
    if args.targets:
        dag = dag.limited_to(args.targets)
    jobs = args.jobs or auto_jobs(usable_cores(), dag.width())
    # --quiet: the stage's own output only, without DVC's hints after each stage (git add dvc.lock, dvc push)
    command = ["dvc", "--quiet", "--wait-for-lock", "repro", "--single-item", *(["--force"] if args.force else [])]
    seconds = load_seconds(root)
    began = time.monotonic()
    env = stage_env(jobs)
    scheduler = Scheduler(dag, jobs, command, env, seconds)
    share = env[STAGE_CORES_ENV]
    scheduler.say(f"up to {jobs} stages at a time, {share} core{'' if share == '1' else 's'} each "
                  f"({usable_cores()} in all)")
    try:
        failed, took = scheduler.run()
    except KeyboardInterrupt:
        scheduler.say("stopped")
        return 130
    if took:
        (root / TIMES).parent.mkdir(parents=True, exist_ok=True)
        (root / TIMES).write_text(json.dumps({**seconds, **{k: round(v, 1) for k, v in took.items()}}, indent=1))
    if failed:
        scheduler.say(f"failed: {', '.join(failed)}; the stages that depend on them did not run")
        return 1
    scheduler.say(f"{len(took)} stages in {time.monotonic() - began:.0f} s, {jobs} at a time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
