"""The ``course`` command: data, training, plots, saliency figures, notebooks, the book and grading.

Run ``course --help`` or ``course SUBCOMMAND --help`` for the flags.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

# The grading subcommands run where torch is heavy or absent: nothing at the top
# of this module imports it; build_parser imports the ML modules only when the
# command line asks for an ML subcommand (or for the full --help).
GRADING_COMMANDS = ("assign", "grade", "feedback")


class _Parser(argparse.ArgumentParser):
    """argparse, with a pointer to ``--help`` in every usage error."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\nRun `{self.prog} --help` for the valid flags.\n")


def _choice(kind: str, valid):
    """An argparse type that names the valid choices when the value is not one."""
    def check(value: str) -> str:
        if value not in valid:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {value!r}; valid {kind}s: {', '.join(valid)}")
        return value
    check.__name__ = kind
    return check


def _add_common(p: argparse.ArgumentParser) -> None:
    from .config import PROFILES

    p.add_argument("--profile", default="quick", type=_choice("profile", tuple(PROFILES)),
                   help="quick: offline stand-in data on the CPU; full: the course's dataset")
    p.add_argument("--data-home", default=None,
                   help="data folder (default: $COURSE_DATA_HOME or ~/.cache/course-kit)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _positive_int(value: str) -> int:
    """An argparse type for a count of 1 or more."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {value!r}")
    return int(value)


def build_parser(grading_only: bool = False) -> argparse.ArgumentParser:
    """The ``course`` parser; ``grading_only`` leaves out (and does not import) the ML subcommands."""
    from .grading.cli import add_grading_commands

    parser = _Parser(prog="course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_grading_commands(sub)
    if grading_only:
        return parser

    from .data.faces import DATASETS
    from .models import MODELS
    from .train.optimizers import OPTIMIZERS

    data = sub.add_parser("data", help="prepare datasets")
    data_sub = data.add_subparsers(dest="dataset", required=True, parser_class=_Parser)
    faces = data_sub.add_parser("faces", help="draw the offline stand-in face datasets")
    _add_common(faces)
    faces.set_defaults(leaf_parser=faces, func=cmd_data_faces)

    train = sub.add_parser("train", help="train a real/fake face detector (the course's train_main.py)")
    train.add_argument("-d", "--dataset", default="fakes_dataset", type=_choice("dataset", DATASETS))
    train.add_argument("-m", "--model", default="SimpleNet", type=_choice("model", tuple(MODELS)))
    train.add_argument("-o", "--optimizer", default="SGD", type=_choice("optimizer", OPTIMIZERS))
    train.add_argument("-lr", "--lr", type=float, default=1e-3, help="learning rate")
    train.add_argument("-b", "--batch-size", type=int, default=32)
    train.add_argument("-e", "--epochs", type=int, default=2)
    train.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    train.add_argument("--out", default="out", help="folder for the history JSON (default: out)")
    train.add_argument("--checkpoints", default="checkpoints",
                       help="folder for the best checkpoint and the resume state (default: checkpoints)")
    train.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    train.add_argument("--weights", default=None,
                       help="local file with the pretrained weights of the backbone (models that take them, "
                            "e.g. XceptionBased)")
    train.add_argument("--allow-random-init", action="store_true",
                       help="train from a random initialisation if the pretrained weights are missing")
    train.add_argument("--no-resume", action="store_true",
                       help="start afresh even if a resumable run exists in --out")
    _add_common(train)
    train.set_defaults(leaf_parser=train, func=cmd_train)

    plot = sub.add_parser("plot", help="loss and accuracy curves from a history JSON")
    plot.add_argument("-m", "--model", required=True, help="model name, for the title")
    plot.add_argument("-j", "--json", required=True, help="history JSON written by `course train`")
    plot.add_argument("-d", "--dataset", required=True, type=_choice("dataset", DATASETS))
    plot.add_argument("--out", default="figures", help="folder for the PNG")
    plot.set_defaults(leaf_parser=plot, func=cmd_plot)

    samples = sub.add_parser("samples", help="real and fake samples of a dataset "
                                             "(the course's plot_samples_of_faces_dataset.py)")
    samples.add_argument("-d", "--dataset", default="fakes_dataset", type=_choice("dataset", DATASETS))
    samples.add_argument("--split", default="test", type=_choice("split", ("train", "val", "test")))
    samples.add_argument("-n", type=int, default=6, help="images per row (default 6)")
    samples.add_argument("--out", default="figures", help="folder for the PNG")
    _add_common(samples)
    samples.set_defaults(leaf_parser=samples, func=cmd_samples)

    for name, helptext, func in (
            ("saliency", "gradient saliency maps of a trained detector (the course's saliency_map.py)",
             cmd_saliency),
            ("gradcam", "Grad-CAM of a trained detector (the course's grad_cam_analysis.py)", cmd_gradcam),
            ("roc", "ROC and DET curves and AUCs of a trained detector's real and fake scores "
                    "(the course project's numerical analysis, questions 10 and 28)", cmd_roc)):
        explain = sub.add_parser(name, help=helptext)
        explain.add_argument("-m", "--model", required=True, type=_choice("model", tuple(MODELS)))
        # -cp: the spelling one of the project's own command lines uses
        explain.add_argument("-cpp", "-cp", "--checkpoint-path", required=True,
                             help="checkpoint written by `course train` "
                                  "(checkpoints/<dataset>_<model>_<optimizer>.pt)")
        explain.add_argument("-d", "--dataset", required=True, type=_choice("dataset", DATASETS))
        explain.add_argument("--crop", type=int, default=None,
                             help="centre-crop test images to this side (as the model was trained); default: whole image")
        explain.add_argument("--out", default="figures", help="folder for the PNGs")
        explain.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
        _add_common(explain)
        explain.set_defaults(leaf_parser=explain, func=func)

    models = sub.add_parser("models", help="the model zoo: list the shared trained models, build them")
    models_sub = models.add_subparsers(dest="action", required=True, parser_class=_Parser)
    models_list = models_sub.add_parser("list", help="each zoo model, its recipe, and whether it is built")
    _add_common(models_list)
    models_list.set_defaults(leaf_parser=models_list, func=cmd_models_list)
    models_build = models_sub.add_parser("build", help="train the zoo models that are not built yet")
    models_build.add_argument("names", nargs="*", help="zoo names (default: all)")
    models_build.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    _add_common(models_build)
    models_build.set_defaults(leaf_parser=models_build, func=cmd_models_build)

    notebooks = sub.add_parser("notebooks", help="execute the course notebooks headless")
    nb_sub = notebooks.add_subparsers(dest="action", required=True, parser_class=_Parser)
    nb_run = nb_sub.add_parser("run", help="execute notebooks with papermill into _build/executed")
    nb_run.add_argument("names", nargs="*", help="notebook name prefixes (default: all)")
    nb_run.add_argument("--out", default=None, help="folder for executed copies")
    nb_run.add_argument("--device", default=None, help="DEVICE parameter (default: the notebook's)")
    nb_run.add_argument("--jobs", type=_positive_int, default=1,
                        help="notebooks run at once, each with cores/jobs threads (default 1; zoo models "
                             "trained with fewer threads differ slightly)")
    nb_run.add_argument("--threads", type=_positive_int, default=None,
                        help="threads per kernel (default: torch's own, or cores/jobs with --jobs; zoo models "
                             "trained with another count differ slightly: make book and the tests use 1)")
    _add_common(nb_run)
    nb_run.set_defaults(leaf_parser=nb_run, func=cmd_notebooks_run)

    book = sub.add_parser("book", help="build the HTML book from executed notebooks")
    book.add_argument("--executed", default=None, help="folder of executed notebooks")
    book.set_defaults(leaf_parser=book, func=cmd_book)

    repository = sub.add_parser("set-repository",
                                help="point the book's launch buttons and the notebooks' install cells at a URL")
    repository.add_argument("url", help="https URL of the course repository, e.g. https://github.com/org/kit")
    repository.set_defaults(leaf_parser=repository, func=cmd_set_repository)
    return parser


def cmd_data_faces(args) -> int:
    from .data.faces import faces_root

    print(faces_root(args.profile, args.data_home, seed=args.seed))
    return 0


def cmd_train(args) -> int:
    from torch import nn

    from .config import seed_everything
    from .data import faces_root, load_dataset
    from .models import get_model, get_nof_parameters
    from .train import Trainer, make_optimizer, output_name

    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        raise ValueError("--epochs and --batch-size must be at least 1 and --lr positive")
    seed_everything(args.seed)
    root = faces_root(args.profile, args.data_home, seed=args.seed)
    print(f"==> Preparing data: {args.dataset} from {root}")
    splits = [load_dataset(root, args.dataset, part) for part in ("train", "val", "test")]
    options = {**({"weights_path": args.weights} if args.weights else {}),
               **({"allow_random_init": True} if args.allow_random_init else {})}
    model = get_model(args.model, **options)
    print(f"==> Model {args.model}: {get_nof_parameters(model):,} trainable parameters")
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr, args.momentum)
    trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), args.batch_size, *splits,
                      device=args.device, seed=args.seed)
    name = output_name(args.dataset, args.model, args.optimizer)
    history = trainer.run(args.epochs, output_dir=args.out, run_name=name, resume=not args.no_resume,
                          checkpoint_dir=args.checkpoints)
    for epoch, (loss, acc, val_acc) in enumerate(
            zip(history["train_loss"], history["train_acc"], history["val_acc"]), 1):
        print(f"epoch {epoch}: train loss {loss:.4f}, train acc {acc:.1f}%, val acc {val_acc:.1f}%")
    print(f"==> Wrote {Path(args.out) / (name + '.json')} and {Path(args.checkpoints) / (name + '.pt')}")
    return 0


def cmd_plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .plots import plot_history
    from .train import load_history

    fig = plot_history(load_history(args.json), title=f"{args.dataset} {args.model}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.dataset}_{args.model}_curves.png"
    fig.savefig(path, dpi=120)
    print(f"==> Wrote {path}")
    return 0


def _explained_test_set(args):
    """(model, test split, output folder) for ``course saliency``, ``gradcam`` and ``roc``."""
    import matplotlib

    matplotlib.use("Agg")
    from .config import get_device
    from .data import faces_root, load_dataset
    from .models import load_detector

    model = load_detector(args.model, args.checkpoint_path, get_device(args.device))
    root = faces_root(args.profile, args.data_home, seed=args.seed)
    test = load_dataset(root, args.dataset, "test", crop_size=args.crop)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return model, test, out


def _save(fig, path: Path) -> None:
    from .io import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    print(f"==> Wrote {path}")


def cmd_saliency(args) -> int:
    from .saliency.figures import mean_saliency_maps, plot_mean_saliency, saliency_grid

    model, test, out = _explained_test_set(args)
    stem = f"{args.dataset}_{args.model}"
    _save(saliency_grid(test, model, n=36, seed=args.seed, title=f"{args.model} on {args.dataset}"),
          out / f"{stem}_saliency_grid.png")
    _save(plot_mean_saliency(mean_saliency_maps(test, model), title=f"{args.model} on {args.dataset}"),
          out / f"{stem}_mean_saliency.png")
    return 0


def cmd_gradcam(args) -> int:
    from .saliency.figures import grad_cam_grid

    model, test, out = _explained_test_set(args)
    fig = grad_cam_grid(test, model, per_class=3, seed=args.seed,
                        title=f"Grad-CAM ({args.model}.conv3, true label): {args.model} on {args.dataset}")
    _save(fig, out / f"{args.dataset}_{args.model}_grad_cam.png")
    return 0


def cmd_samples(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .data import FacesDataset, faces_root
    from .plots import plot_samples_of_faces_dataset

    root = faces_root(args.profile, args.data_home, seed=args.seed)
    dataset = FacesDataset(root / args.dataset / args.split)
    print(f"==> {args.dataset}/{args.split}: {dataset.real_len} real, {dataset.fake_len} fake images")
    fig = plot_samples_of_faces_dataset(dataset, args.n, title=f"{args.dataset} ({args.split})")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    _save(fig, Path(args.out) / f"{args.dataset}_samples.png")
    return 0


def cmd_roc(args) -> int:
    from .evaluation import get_soft_scores_and_true_labels, roc_auc
    from .plots import plot_roc_det

    model, test, out = _explained_test_set(args)
    real, fake, labels = get_soft_scores_and_true_labels(test, model)
    auc_real, auc_fake = roc_auc(real, labels), roc_auc(fake, labels)
    accuracy = 100.0 * float(((fake > real) == (labels == 1)).mean())
    called_real = 100.0 * float((real >= fake).mean())
    print(f"==> {args.model} on {args.dataset} test ({len(labels)} images, "
          f"{100.0 * float((labels == 0).mean()):.1f}% real): accuracy {accuracy:.1f}%, "
          f"predicted real {called_real:.1f}%")
    print(f"    AUC (positive = fake): fake score {auc_fake:.3f}, real score {auc_real:.3f} "
          f"(sum {auc_real + auc_fake:.3f})")
    fig = plot_roc_det({"real score": real, "fake score": fake}, labels,
                       title=f"{args.model}, {args.dataset}:")
    _save(fig, out / f"{args.dataset}_{args.model}_roc_det.png")
    return 0


def cmd_models_list(args) -> int:
    from .zoo import get_recipe, is_built, zoo_names

    for name in zoo_names():
        recipe = get_recipe(name)
        try:
            state, reason = ("built" if is_built(name, args.profile, args.data_home, args.seed)
                             else "not built"), ""
        except FileNotFoundError as err:  # its data is missing: say so, and list the others
            state, reason = "no data", f"\n{'':31s}{err}"
        settings = ", ".join(f"{k}={v}" for k, v in recipe.settings(args.profile).items())
        print(f"{name:20s} {state:9s}  {recipe.summary}\n{'':31s}{settings}{reason}")
    return 0


def cmd_models_build(args) -> int:
    """Build the named models; with no names, every model whose data is there, then name those whose data is not."""
    from .zoo import build, zoo_names

    missing = []
    for name in args.names or zoo_names():
        try:
            built = build(name, args.profile, args.data_home, args.device, args.seed)
        except FileNotFoundError as err:
            if args.names:  # asked for by name: its missing data is the error
                raise
            missing.append(name)  # building all: build the others, then report it (exit status 1)
            print(f"{name}: not built, its data is missing: {err}", flush=True)
            continue
        metrics = ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in built.metrics.items()
                            if not (k.endswith("_digits") and isinstance(v, str)))  # per-digit verdicts
        state = "built now" if built.built_now else "already built"
        print(f"{name}: {state}; training {built.seconds:.1f} s, metrics {built.eval_seconds:.1f} s; "
              f"{metrics}", flush=True)
    if missing:
        print(f"not built for want of data ({args.profile} profile): {', '.join(missing)}; each line above "
              "says how to get it", file=sys.stderr)
        return 1
    return 0


def cmd_notebooks_run(args) -> int:
    from .runner import EXECUTED_DIR, run_notebooks, select_notebooks

    parameters = {}
    if args.profile != "quick":
        parameters["PROFILE"] = args.profile
    if args.seed != 0:
        parameters["SEED"] = args.seed
    if args.device:
        parameters["DEVICE"] = args.device
    runs = run_notebooks(select_notebooks(args.names), args.out or EXECUTED_DIR, parameters,
                         data_home=args.data_home, jobs=args.jobs, threads=args.threads)
    failed = [r.name for r in runs if not r.ok]
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}; their executed copies "
              "show the error", file=sys.stderr)
    return 1 if failed else 0


def cmd_book(args) -> int:
    from .book import build_book
    from .runner import EXECUTED_DIR

    print(f"==> Book written to {build_book(args.executed or EXECUTED_DIR)}/index.html")
    return 0


def cmd_set_repository(args) -> int:
    from .launch import set_repository

    changed = set_repository(args.url)
    print(f"repository set to {args.url} in {len(changed)} files (_config.yml and every notebook's install cell)")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    grading_only = bool(argv) and argv[0] in GRADING_COMMANDS
    args, unknown = build_parser(grading_only).parse_known_args(argv)
    if unknown:
        # Report an unknown flag against the subcommand, whose --help lists the valid ones.
        args.leaf_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, RuntimeError) as err:
        print(f"course {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
