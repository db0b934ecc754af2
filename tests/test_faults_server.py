"""The TraX server under what a toolkit or a user sends it: polygons, special regions, boxes with no size, a
1x1 frame, signals; and trackers.ini paths with a ``%``. Driven through a real server process and the TraX
client, as the toolkit drives it."""
from __future__ import annotations

import configparser
import math
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import trax
from trax.client import Client
from trax.image import FileImage

from vot_lorat.toolkit.workspace import DEMO_STACK, trackers_ini

from scenes import write_scene_frames

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")
VOT = os.path.join(os.path.dirname(sys.executable), "vot")


class Server:
    """``python -m vot_lorat`` with the demo model, and a TraX client talking to it."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LORAT_")}
        env.update(TRAX="1", PYTHONPATH=ROOT, LORAT_VARIANT="tiny", LORAT_WEIGHTS=WEIGHTS, LORAT_DEVICE="cpu",
                   LORAT_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "vot_lorat"], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.client = Client(stream=(self.proc.stdin.fileno(), self.proc.stdout.fileno()), log=lambda text: None,
                             timeout=120)

    def track(self, first: str, objects, later, late_objects=None):
        """The answers (region strings) to an initialisation and to each frame of ``later``; ``late_objects``
        arrive with the first of them."""
        self.client.initialize({"color": FileImage.create(first)}, [(o, {}) for o in objects], {})
        answers = []
        for i, path in enumerate(later):
            new = [(o, {}) for o in late_objects] if late_objects and i == 0 else []
            regions, _ = self.client.frame({"color": FileImage.create(path)}, {}, new)
            answers.append([str(region) for region, _ in regions])
        return answers

    def stderr_lines(self, sig=None):
        """Quit (or send ``sig``), wait, and the server's stderr without the start-up line."""
        if sig is None:
            self.client.quit()
        else:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        # the client's handle goes first: freed after its log callback, it calls the freed callback
        self.client._handle = None
        self.proc.stdin.close()
        err = self.proc.stderr.read().decode()
        return [line for line in err.splitlines() if line.strip() and "ready on" not in line]


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    scene, paths = write_scene_frames(tmp_path_factory.mktemp("frames"), 4242, 5, targets=1)
    x1, y1, x2, y2 = (float(v) for v in scene.boxes(0)[0])
    return paths, (x1, y1, x2, y2)


def test_a_polygon_is_tracked_as_the_rectangle_around_it(frames):
    paths, (x1, y1, x2, y2) = frames
    polygon = Server()
    assert trax.Region.POLYGON in polygon.client.region_formats  # so the toolkit sends polygons as they are
    a = math.radians(20)  # a rotated box, as the polygons of VOT 2013-2019 are
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    corners = [(cx + dx * math.cos(a) - dy * math.sin(a), cy + dx * math.sin(a) + dy * math.cos(a))
               for dx, dy in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))]
    by_polygon = polygon.track(paths[0], [trax.Polygon.create(corners)], paths[1:4])
    assert polygon.stderr_lines() == []
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    rectangle = Server()
    by_rectangle = rectangle.track(paths[0], [trax.Rectangle.create(min(xs), min(ys), max(xs) - min(xs),
                                                                    max(ys) - min(ys))], paths[1:4])
    rectangle.stderr_lines()
    assert by_polygon == by_rectangle and all("0.0x0.0" not in a[0] for a in by_polygon)


def test_odd_initial_regions_are_absent_with_one_line_each(frames, tmp_path):
    """A NaN box (libtrax sends it as a special region), a late object sent as a special region, a box of
    negative width: each object is absent with one warning, no traceback, and the others are tracked; a 1x1
    first frame says what the tracker makes of it."""
    paths, (x1, y1, x2, y2) = frames
    server = Server()
    target = trax.Rectangle.create(x1, y1, x2 - x1, y2 - y1)
    answers = server.track(paths[0], [trax.Rectangle.create(math.nan, 10, 20, 20), target,
                                      trax.Rectangle.create(50, 10, -20, 20)], paths[1:3],
                           late_objects=[trax.Rectangle.create(math.nan, 1, 5, 5)])
    one = tmp_path / "one.png"
    cv2.imwrite(str(one), np.zeros((1, 1, 3), np.uint8))
    server.track(str(one), [trax.Rectangle.create(0, 0, 1, 1)], [str(one)])
    lines = server.stderr_lines()
    for answer in answers:
        assert answer[0] == answer[2] == "Rectangle 0.0,0.0 0.0x0.0" and "0.0x0.0" not in answer[1]
    assert answers[-1][3] == "Rectangle 0.0,0.0 0.0x0.0"  # the late object
    assert "Traceback" not in "\n".join(lines)
    assert sum("is no position; reporting the object absent" in line for line in lines) == 2, lines
    assert sum("-20 x 20 pixels" in line and "absent" in line for line in lines) == 1, lines
    assert sum("1x1 frame, smaller than the 10 px" in line for line in lines) == 1, lines
    assert len(lines) == 4, lines


def _children(pid: int):
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_ends_the_server_with_one_line_and_nothing_left_behind(frames, sig):
    """The toolkit sends SIGTERM to a tracker that has not quit within 3 s; a closed terminal SIGHUP; Ctrl-C
    SIGINT. The server forks nothing that could outlive it."""
    paths, (x1, y1, x2, y2) = frames
    server = Server()
    server.track(paths[0], [trax.Rectangle.create(x1, y1, x2 - x1, y2 - y1)], paths[1:2])
    assert _children(server.proc.pid) == []
    assert server.stderr_lines(sig) == [f"LoRAT: stopped by {sig.name}"]
    assert server.proc.returncode == 128 + sig


def test_a_percent_in_a_path_survives_the_toolkits_configparser(tmp_path):
    weights = tmp_path / "100%" / "model.safetensors"
    text = trackers_ini(str(tmp_path / "r%epo"), "python", "tiny", None, str(weights))
    parser = configparser.ConfigParser()  # interpolation on, as vot-toolkit reads trackers.ini
    parser.read_string(text)
    assert parser["LoRAT"]["env_LORAT_WEIGHTS"] == str(weights)
    assert parser["LoRAT"]["paths"] == str(tmp_path / "r%epo")
    assert parser["LoRAT"]["env_LD_LIBRARY_PATH"] == "${LD_LIBRARY_PATH}"


@pytest.mark.slow
def test_the_toolkit_tracks_a_polygon_stack_from_a_percent_path(tmp_path):
    """vot evaluate on a sequence whose ground truth is rotated boxes written as polygons, with the weights
    in a folder whose name has a %: the first answers lie around the polygon, as the rectangle case's do."""
    from vot.region.io import read_trajectory

    seq = tmp_path / "ws" / "sequences" / "poly"
    (seq / "color").mkdir(parents=True)
    scene, paths = write_scene_frames(seq / "color", 4242, 10, targets=1)
    for i, path in reversed(list(enumerate(paths))):  # VOT numbers frames from 1
        os.rename(path, seq / "color" / f"{i + 1:08d}.jpg")
    lines = []
    for x1, y1, x2, y2 in scene.boxes(0):
        a, cx, cy, hw, hh = math.radians(12), (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        lines.append(",".join(f"{v:.2f}" for dx, dy in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))
                              for v in (cx + dx * math.cos(a) - dy * math.sin(a),
                                        cy + dx * math.sin(a) + dy * math.cos(a))))
    (seq / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    (seq / "sequence").write_text(f"channels.color=color/%08d.jpg\nfps=30\nwidth={scene.width}\n"
                                  f"height={scene.height}\nlength=10\nformat=default\n")
    ws = tmp_path / "ws"
    (ws / "sequences" / "list.txt").write_text("poly\n")
    (ws / "stack.yaml").write_text(DEMO_STACK.replace("    multiobject: True\n", ""))
    (ws / "config.yaml").write_text("registry:\n- ./trackers.ini\nstack: stack.yaml\n")
    weights = tmp_path / "100%" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(open(WEIGHTS, "rb").read())
    (ws / "trackers.ini").write_text(trackers_ini(ROOT, sys.executable, "tiny", None, str(weights), device="cpu",
                                                  threads=1))
    start = time.time()
    out = subprocess.run([VOT, "evaluate", "LoRAT"], cwd=ws, capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, VOT_WORKER_POOL_SIZE="1"))
    assert out.returncode == 0 and "concluded successfuly" in out.stdout + out.stderr, out.stdout + out.stderr
    trajectory = read_trajectory(str(ws / "results" / "LoRAT" / "baseline" / "poly" / "poly_001.bin"))
    x1, y1, x2, y2 = scene.boxes(0)[1]
    first = trajectory[1].bounds()  # (left, top, right, bottom)
    assert first[2] - first[0] > 0.5 * (x2 - x1) and abs((first[0] + first[2]) / 2 - (x1 + x2) / 2) < 0.3 * (x2 - x1)
    print(f"vot evaluate on the polygon stack: {time.time() - start:.1f} s")
