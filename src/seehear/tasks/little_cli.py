"""`seehear fewshot`, `seehear pretrain`, `seehear start` and `seehear label`: learning from little labelled data
(argument parsing only; the work is in tasks/fewshot.py, tasks/pretrain.py, engine/starts.py and tasks/label.py)."""
from __future__ import annotations


def add_commands(sub) -> None:
    fs = sub.add_parser("fewshot", help="add a class to a trained classification run from a few examples, without "
                                        "retraining (class prototypes)")
    fs.add_argument("run")  # `seehear fewshot RUN enroll CLASS FILE...`: the run first, as the user thinks of it
    fs_sub = fs.add_subparsers(dest="fewshot_command", required=True)
    en = fs_sub.add_parser("enroll", help="add (or replace) a few-shot class CLASS from example FILEs")
    en.add_argument("label", metavar="CLASS")
    en.add_argument("files", nargs="+", metavar="FILE")
    en.add_argument("--shots", type=int, help="at least this many examples must be readable (default: all given)")
    en.set_defaults(handler=_cmd_enroll)
    fg = fs_sub.add_parser("forget", help="remove a few-shot class (with none left, predict uses the classifier)")
    fg.add_argument("label", metavar="CLASS")
    fg.set_defaults(handler=_cmd_forget)
    ev = fs_sub.add_parser("evaluate", help="few-shot accuracy of the run's embedding on the classes of DATA "
                                            "(episodes: WAYS classes, SHOTS examples each, nearest prototype)")
    ev.add_argument("data", metavar="DATA")
    ev.add_argument("--ways", type=int, default=5)
    ev.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    ev.add_argument("--queries", type=int, default=15, help="examples of each class to classify per episode")
    ev.add_argument("--episodes", type=int, default=600)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--json", dest="json_out", metavar="FILE", help="also write the result as JSON")
    ev.set_defaults(handler=_cmd_evaluate)

    pt = sub.add_parser("pretrain", help="self-supervised pretraining without labels: an image backbone (SimCLR, "
                                         "BYOL or DINO) or a speech encoder (BEST-RQ masked prediction); start "
                                         "labelled runs from it with --from")
    pt.add_argument("data", metavar="UNLABELLED_DIR", help="images or recordings (labels, if any, are not used)")
    pt.add_argument("--out", required=True, help="run folder to create, e.g. runs/ssl or runs/ssl-audio")
    pt.add_argument("--method", help="images: simclr (the default), byol or dino (an EMA teacher, no negatives); "
                                     "audio: masked (BEST-RQ, the default) or contrastive")
    pt.add_argument("--model", help="images: a classifier backbone; audio: a transcription model whose encoder "
                                    "is pretrained (default conformer_ctc_tiny; see `seehear models --task "
                                    "transcribe`)")
    pt.add_argument("--epochs", type=int)
    pt.add_argument("--time-budget", type=_duration, help="stop after this long, e.g. 30m")
    pt.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="any setting, e.g. --set pretrain.codebook_size=1024 --set pretrain.mask_prob=0.5")
    pt.add_argument("--overwrite", action="store_true")
    pt.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    pt.add_argument("--quiet", action="store_true")
    pt.set_defaults(handler=_cmd_pretrain)

    st = sub.add_parser("start", help="the default starting point of photo runs: a pretrained run of yours, copied "
                                      "to $SEEHEAR_HOME/start/RECIPE (default ~/.seehear; never downloaded)")
    st_sub = st.add_subparsers(dest="start_command", required=True)
    ss = st_sub.add_parser("set", help="photo runs that name no start or model start from RUN's backbone (as with "
                                       "--from); opt out per run with --set model.start=scratch")
    ss.add_argument("recipe", metavar="RECIPE", help="image-photo (photos of at least 64 px)")
    ss.add_argument("run", metavar="RUN", help="a finished image run, e.g. from `seehear pretrain PHOTOS --out RUN`")
    ss.set_defaults(handler=_cmd_start_set)
    st_sub.add_parser("show", help="which default starts are set").set_defaults(handler=_cmd_start_show)
    sc = st_sub.add_parser("clear", help="remove the files `start set` copied (photo runs then train from scratch)")
    sc.add_argument("recipe", metavar="RECIPE")
    sc.set_defaults(handler=_cmd_start_clear)

    lb = sub.add_parser("label", help="the model's labels, with calibrated confidences, for a folder of unlabelled "
                                      "files, and the ones most worth a person's review first")
    lb.add_argument("run")
    lb.add_argument("folder", metavar="NEW_DIR")
    lb.add_argument("--out", help="CSV of every file's label (default RUN/labels/NEW_DIR.csv)")
    lb.add_argument("--review", metavar="CSV", help="also write the files sorted for review: lowest margin first")
    lb.set_defaults(handler=_cmd_label)


def _duration(text: str) -> float:
    """'90', '90s', '5m', '1.5h' -> seconds (as `seehear train --time-budget`; cli.py is a higher layer)."""
    import argparse
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; use e.g. 90s, 5m or 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _cmd_pretrain(a) -> int:
    from seehear.tasks.pretrain import pretrain

    r = pretrain(a.data, a.out, method=a.method, model=a.model, epochs=a.epochs, time_budget=a.time_budget,
                 overrides=a.overrides, overwrite=a.overwrite, resume=a.resume, progress=not a.quiet)
    m = r.metrics or {}
    line = f"run: {r.run_dir}"
    if m.get("knn_accuracy") is not None:
        line += f"   kNN accuracy (monitor, folder labels): {m['knn_accuracy']:.3f}"
    if m.get("masked_accuracy") is not None:
        line += (f"   masked-prediction accuracy on {m.get('files', 0)} held-out file(s): {m['masked_accuracy']:.3f} "
                 f"(chance {m.get('chance', 0):.4f}, most frequent code {m.get('majority_code_accuracy', 0):.3f})")
    task = " --task transcribe" if r.meta.get("modality") == "audio" else ""
    print(line + f"\nstart a labelled run from it: seehear train DATA{task} --out runs/NAME --from {r.run_dir}")
    if r.meta.get("modality") == "image":
        print(f"or make it the start of every photo run: seehear start set image-photo {r.run_dir}")
    return 0


def _cmd_start_set(a) -> int:
    from seehear.engine.starts import set_default

    r = set_default(a.recipe, a.run)
    size = (r.get("input") or {}).get("size")
    print(f"default start for {a.recipe}: {r['folder']} (copied from {r['from']}, model {r['model']}"
          + (f" at {size}x{size}" if size else "") + f", SHA-256 {r['sha256'][:12]}…); {a.recipe} runs that name no "
          f"start or model of their own now start from it (opt out: --set model.start=scratch)")
    return 0


def _cmd_start_show(a) -> int:
    from seehear.engine.starts import show

    for r in show():
        extra = f" from {r['from']} (model {r.get('model')}, SHA-256 {str(r.get('sha256'))[:12]}…)" \
            if r["state"] == "set" and r.get("from") else ""
        print(f"{r['recipe']}: {r['state']}{extra}   [{r['folder']}]")
    return 0


def _cmd_start_clear(a) -> int:
    from seehear.engine.starts import clear_default, folder

    gone = clear_default(a.recipe)
    print(f"removed {len(gone)} file(s) from {folder(a.recipe)}; {a.recipe} runs train from scratch" if gone
          else f"no default start was set for {a.recipe}")
    return 0


def _cmd_enroll(a) -> int:
    from seehear.tasks.fewshot import enroll

    r = enroll(a.run, a.label, a.files, shots=a.shots)
    print(f"enrolled {r['enrolled']!r} from {r['examples']} example(s); {a.run} now predicts by nearest prototype "
          f"over {len(r['labels'])} classes ({len(r['fewshot'])} few-shot: {', '.join(r['fewshot'])})")
    for key, why in r["skipped"]:
        print(f"skipped {key}: {why}")
    return 0


def _cmd_forget(a) -> int:
    from seehear.tasks.fewshot import forget

    r = forget(a.run, a.label)
    print(f"removed {a.label!r}; few-shot classes left: {', '.join(r['fewshot']) or 'none (the classifier decides)'}")
    return 0


def _cmd_evaluate(a) -> int:
    from seehear.atomic import write_json
    from seehear.tasks.fewshot import evaluate_fewshot

    r = evaluate_fewshot(a.run, a.data, ways=a.ways, shots=a.shots, episodes=a.episodes, seed=a.seed,
                         queries=a.queries)
    print(f"{a.ways}-way few-shot on {len(r['classes'])} classes of {a.data} ({len(r['new_classes'])} new to the "
          f"run), {a.episodes} episodes of {a.queries} queries per class:")
    for k, v in r["shots"].items():
        print(f"  {k}-shot: accuracy {v['accuracy']:.4f} ± {v['ci95']:.4f} (95% interval)")
    if a.json_out:
        write_json(a.json_out, r)
    return 0


def _cmd_label(a) -> int:
    from seehear.tasks.label import label

    r = label(a.run, a.folder, out=a.out, review=a.review)
    print(f"labelled {r['labelled']} file(s) into {r['out']}" + (f"; review list {r['review']}" if r["review"] else "")
          + (f"; {len(r['skipped'])} unreadable" if r["skipped"] else ""))
    return 0
