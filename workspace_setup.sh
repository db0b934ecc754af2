#!/usr/bin/env bash
# Build a VOT toolkit workspace that tracks with LoRAT.
#
#   ./workspace_setup.sh --demo
#       Offline demo: install, write synthetic multi-object sequences with full ground truth, track them
#       with the small LoRAT that ships in vot_lorat/checkpoints/, then vot evaluate / analysis / report.
#   ./workspace_setup.sh --stack vots2024/main --backbone dinov2_vitl14_pretrain.pth \
#                        --weights LoRAT-L-378/model.bin [--sam sam_vit_h_4b8939.pth]
#       A workspace for a real stack with the official weights; then: cd vot_workspace && vot evaluate LoRAT
#       Any stack of the toolkit's catalogue that a box or mask tracker can run: the script picks the vot-toolkit
#       release that runs it (0.7.4, in a toolkit-only .venv-vot-0.7.4 it makes once, for the multistart,
#       supervised and realtime experiments of the short-term stacks; the project's 0.9.0 for the others) and
#       ends by printing the commands to run, with that release's vot. See docs/vot-stacks.md.
#
# Options:
#   --workspace DIR        workspace folder (default: ./vot_workspace, or ./demo_workspace with --demo)
#   --stack NAME           VOT stack: a catalogue name or a stack file (default vots2024/main)
#   --variant V            B-224, B-378, L-224, L-378, g-224, g-378, S-224, S-378, tiny (default: read from
#                          --weights: their saved variant, their shapes, or a LoRAT-L-378 folder name)
#   --backbone FILE        Meta DINOv2 .pth or timm .safetensors; only for LoRA-only weights (the released
#                          model.bin): whole-model weights (merged, --full-finetune, the demo's) need none
#   --weights FILE         LoRAT checkpoint (the released model.bin, or one from python -m training)
#   --device DEV           auto (default), cpu, cuda, cuda:1 ...
#   --precision P          auto (fp16 on GPU, fp32 on CPU), fp32, fp16, bf16
#   --sam FILE             SAM checkpoint (sam_vit_{b,l,h}_*.pth): adds the LoRAT-SAM tracker
#   --sam-mode M           crop (the reference, default) or frame (one SAM encoding per frame)
#   --absence-threshold T  report an object absent when its confidence is below T (default: off)
#   --timeout S            seconds the toolkit waits for one frame (default 600)
#   --nodownload           vot initialize without downloading the dataset
#   --replica N            offline: fill the workspace with N of the toolkit's dummy sequences, written as the
#                          stack needs them (anchors, masks, tags), instead of the stack's dataset
#   --replica-frames L     frames of the first replica sequence, each next one a frame longer (default 300)
#   --demo                 the offline demo (see above)
#   --retrain              with --demo: first retrain the small model (hours on a CPU) instead of using
#                          the shipped one
#   --python PY            run everything with this Python, which already has vot_lorat's dependencies
#                          (nothing is installed). Default: the active virtualenv or conda environment when
#                          it has them, else the repository's .venv (made or updated by ./install.sh)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEMO_WEIGHTS="$REPO/vot_lorat/checkpoints/lorat_tiny_synthetic.safetensors"

workspace="" stack="vots2024/main" variant="" backbone="" weights="" device="auto" precision="auto"
sam="" sam_mode="crop" absence="" timeout=600 nodownload=0 demo=0 retrain=0 PY="" replica=0 replica_frames=300

die() { echo "workspace_setup.sh: $*" >&2; exit 2; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --workspace) need_value "$@"; workspace="$2"; shift 2 ;;
        --stack) need_value "$@"; stack="$2"; shift 2 ;;
        --variant) need_value "$@"; variant="$2"; shift 2 ;;
        --backbone) need_value "$@"; backbone="$2"; shift 2 ;;
        --weights) need_value "$@"; weights="$2"; shift 2 ;;
        --device) need_value "$@"; device="$2"; shift 2 ;;
        --precision) need_value "$@"; precision="$2"; shift 2 ;;
        --sam) need_value "$@"; sam="$2"; shift 2 ;;
        --sam-mode) need_value "$@"; sam_mode="$2"; shift 2 ;;
        --absence-threshold) need_value "$@"; absence="$2"; shift 2 ;;
        --timeout) need_value "$@"; timeout="$2"; shift 2 ;;
        --nodownload) nodownload=1; shift ;;
        --replica) need_value "$@"; replica="$2"; shift 2 ;;
        --replica-frames) need_value "$@"; replica_frames="$2"; shift 2 ;;
        --demo) demo=1; shift ;;
        --retrain) retrain=1; shift ;;
        --python) need_value "$@"; PY="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

# The Python that runs the toolkit and the trackers: --python, else an active environment that already has
# the dependencies (vot_lorat itself comes from the repository: trackers.ini's `paths`), else ./install.sh's .venv.
has_dependencies() { PYTHONPATH="$REPO" "$1" -c "import torch, timm, trax, vot, cv2, vot_lorat" >/dev/null 2>&1; }
active="${VIRTUAL_ENV:-${CONDA_PREFIX:-}}"
if [ -n "$PY" ]; then
    has_dependencies "$PY" || die "$PY cannot import vot_lorat's dependencies (torch, timm, vot-trax, vot-toolkit," \
        "opencv): pip install -e $REPO there, or leave out --python to use ./install.sh's .venv"
    echo "== using $PY (nothing installed)"
elif [ -n "$active" ] && [ "$active" != "$REPO/.venv" ] && has_dependencies "$active/bin/python"; then
    PY="$active/bin/python"
    echo "== using the active environment $active (nothing installed)"
else
    "$REPO/install.sh"
    PY="$REPO/.venv/bin/python"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
VOT=("$(dirname "$PY")/vot")
[ -x "${VOT[0]}" ] || VOT=("$PY" -m vot)

trackers_args=(--repo "$REPO" --python "$PY" --device "$device" --precision "$precision" --timeout "$timeout")
if [ -n "$absence" ]; then trackers_args+=(--absence-threshold "$absence"); fi

if [ "$demo" = 1 ]; then
    start=$(date +%s)
    workspace="${workspace:-$PWD/demo_workspace}"
    if [ "$retrain" = 1 ]; then
        echo "== retraining the demo model (the command in vot_lorat/checkpoints/README.md)"
        "$PY" -m training train --variant tiny --full-finetune --layer-scale-init 1.0 --data synthetic \
            --eval-data synthetic,split=held_out,sequences=24 --output "$REPO/runs/demo-retrain" --epochs 40 \
            --samples-per-epoch 32768 --batch-size 32 --lr 1e-3 --warmup-epochs 0.1 --translation-jitter 1.0 \
            --workers 2 --threads 1 --log-every 50 --checkpoint-interval 2 --keep-checkpoints 3 --resume
        DEMO_WEIGHTS="$REPO/runs/demo-retrain/model.safetensors"
    fi
    [ -f "$DEMO_WEIGHTS" ] || die "demo weights $DEMO_WEIGHTS are missing; run with --retrain"
    if [ -e "$workspace" ]; then
        [ -f "$workspace/.lorat_demo" ] || die "$workspace exists and is not a demo workspace; pick --workspace"
        rm -rf "$workspace"
    fi
    mkdir -p "$workspace/sequences" "$workspace/results"
    touch "$workspace/.lorat_demo"
    echo "== writing synthetic sequences to $workspace/sequences"
    "$PY" -m training make-vot-sequences --output "$workspace/sequences" --count 6 --frames 80 --objects 3
    "$PY" -m vot_lorat.toolkit.workspace stack --output "$workspace/stack.yaml"
    printf 'registry:\n- ./trackers.ini\nstack: stack.yaml\n' > "$workspace/config.yaml"
    "$PY" -m vot_lorat.toolkit.workspace trackers --output "$workspace/trackers.ini" "${trackers_args[@]}" \
        --variant tiny --weights "$DEMO_WEIGHTS" --threads 1 --static
    cd "$workspace"
    echo "== vot evaluate"
    "${VOT[@]}" evaluate LoRAT LoRAT-mask static
    echo "== vot analysis"
    "${VOT[@]}" analysis LoRAT LoRAT-mask static --format json --name demo
    echo "== vot report"
    "${VOT[@]}" report LoRAT LoRAT-mask static --format html --name demo
    echo
    echo "Offline demo: $(ls sequences | grep -c synth) synthetic sequences, VOTS-style scores"
    "$PY" -m vot_lorat.toolkit.workspace summary analysis/demo.json
    echo
    echo "Report: $workspace/reports/demo/report.html"
    echo "Done in $(( $(date +%s) - start )) s."
    exit 0
fi

[ -n "$weights" ] || die "--weights is required (or use --demo)"
workspace="${workspace:-$PWD/vot_workspace}"
[ -f "$workspace/config.yaml" ] && die "$workspace already holds a workspace; pick another --workspace"
# the stack, the weights (and the entries written) are checked before the workspace folder exists: a refusal leaves
# nothing
plan="$("$PY" -m vot_lorat.toolkit.workspace plan "$stack")" || exit 2
read -r toolkit masks local_copy <<< "$plan"
entries="$(mktemp "${TMPDIR:-/tmp}/lorat-trackers.XXXXXX")"
trap 'rm -f "$entries"' EXIT
"$PY" -m vot_lorat.toolkit.workspace trackers --output "$entries" "${trackers_args[@]}" \
    ${variant:+--variant "$variant"} ${backbone:+--backbone "$backbone"} --weights "$weights" \
    ${sam:+--sam "$sam"} --sam-mode "$sam_mode"

# A vot-toolkit release other than the project's lives in a toolkit-only environment beside .venv, made once and
# reused: a toolkit needs no torch, the tracker keeps running in $PY (trackers.ini's `python`).
installed="$("$PY" -c 'import importlib.metadata as m; print(m.version("vot-toolkit"))')"
if [ "$toolkit" != "$installed" ]; then
    toolkit_env="$REPO/.venv-vot-$toolkit"
    # attributee 0.1.10 stops every vot-toolkit release from starting on Python 3.11+
    requirements="vot-toolkit==$toolkit attributee==0.1.9"
    if [ ! -x "$toolkit_env/bin/vot" ] || [ "$(cat "$toolkit_env/.requirements" 2>/dev/null)" != "$requirements" ]
    then
        echo "== making $toolkit_env: vot-toolkit $toolkit alone, for $stack (the tracker keeps running in $PY)"
        "$PY" -m venv "$toolkit_env"
        # shellcheck disable=SC2086  # the requirements are words
        "$toolkit_env/bin/python" -m pip install -q $requirements \
            || die "could not install vot-toolkit $toolkit into $toolkit_env (no package registry?)"
        echo "$requirements" > "$toolkit_env/.requirements"
    fi
    VOT=("$toolkit_env/bin/vot")
fi

offline="$nodownload"
if [ "$replica" != 0 ]; then offline=1; fi
mkdir -p "$workspace"
workspace="$(cd "$workspace" && pwd)"  # the printed commands work from anywhere
if [ "$local_copy" = 1 ]; then
    # vot initialize takes catalogue names only: the workspace's own copy of the stack is set up here
    "$PY" -m vot_lorat.toolkit.workspace stack --from "$stack" --output "$workspace/stack.yaml"
    printf 'registry:\n- ./trackers.ini\nstack: stack.yaml\n' > "$workspace/config.yaml"
    mkdir -p "$workspace/sequences" "$workspace/results"
    echo "== $workspace/stack.yaml: $stack as this workspace runs it (see the file's first line)"
    if [ "$offline" = 0 ]; then echo "   (the first vot command downloads the stack's dataset)"; fi
else
    init_args=(initialize "$stack" --workspace "$workspace")
    if [ "$offline" = 1 ]; then init_args+=(--nodownload); fi
    echo "== vot ${init_args[*]} (vot-toolkit $toolkit)"
    if ! "${VOT[@]}" "${init_args[@]}"; then
        echo "workspace_setup.sh: vot initialize failed (no network? retry, or use --nodownload and fill" \
             "$workspace/sequences yourself, with a list.txt)" >&2
    fi
fi
if [ "$replica" != 0 ]; then
    echo "== writing $replica replica sequences (the toolkit's dummy sequences) to $workspace/sequences"
    "$PY" -m vot_lorat.toolkit.workspace replica --stack "$stack" --output "$workspace/sequences" \
        --count "$replica" --frames "$replica_frames"
fi
cp "$entries" "$workspace/trackers.ini"

if [ "$masks" = 1 ]; then
    tracker="${sam:+LoRAT-SAM}"; tracker="${tracker:-LoRAT-mask}"
    answers="masks (the stack's ground truth is masks)"
else
    tracker="LoRAT"
    answers="rectangles (the stack's ground truth is boxes)"
fi
echo
echo "Workspace ready: $workspace ($stack, vot-toolkit $toolkit; $tracker answers $answers)"
if [ "$masks" = 1 ] && [ -n "$sam" ]; then
    echo "  cd $workspace && ${VOT[*]} evaluate LoRAT-SAM    # SAM masks ($sam_mode mode)"
fi
if [ "$masks" = 1 ]; then echo "  cd $workspace && ${VOT[*]} evaluate LoRAT-mask   # box-filled masks"; fi
echo "  cd $workspace && ${VOT[*]} evaluate LoRAT        # rectangles"
echo "  cd $workspace && ${VOT[*]} analysis $tracker --format json --name $tracker"
echo "  cd $workspace && PYTHONPATH=$REPO $PY -m vot_lorat.toolkit.workspace summary analysis/$tracker.json"
echo "  cd $workspace && ${VOT[*]} report $tracker --format html && ${VOT[*]} pack $tracker"
