"""Screenshot, part 1 (project environment with slicer-core): run the CardioScar Logic on the LV
phantom, in the panel's worker process, and draw the coloured result offscreen with Slicer's own
3D displayable managers.

    PYTHONPATH=CardioScarLib .venv/bin/python Resources/tools/render_result.py OUT_DIR

Writes OUT_DIR/result_3d.png (the view angle that shows the most scar is kept) and
OUT_DIR/panel_values.json (the inputs, summary rows and the worker's log, for part 2:
make_screenshot.py).
"""

import importlib.metadata
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.background import BackgroundRun  # noqa: E402
from CardioScarLogic.render import OffscreenThreeDView  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom  # noqa: E402

SLICES = "0,2,4,6"


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    phantom = make_phantom(PhantomConfig(target_nodes=6000, seed=3))
    paths = write_phantom(phantom, Path(tempfile.mkdtemp()))
    context = csl.create_scene()
    volume = csl.load_volume(context.scene, paths["image"], name="LGE")
    model = csl.load_model(context.scene, paths["mesh"], name="LV mesh")
    view = OffscreenThreeDView(context.scene, context.application_logic, size=(720, 720),
                               background=(0.12, 0.13, 0.18))
    # the panel's defaults: the fast preset; the phantom's pixels are whole-box means, so correct them
    options = csl.ReconstructionOptions(slice_indices=SLICES, half_thickness=phantom.slice_half_thickness_mm,
                                        preset="fast", partial_volume_correction=True, threshold=0.5)
    run = BackgroundRun.training(csl.CardioScarLogic(context.scene, context.color_logic), volume, model, options)
    log = ["Training..."]
    while run.running:
        # what the panel's log keeps: every report but progress, and progress every 100 epochs and at the end
        log += [m.text for m in run.messages() if m.kind != "progress" or m.fields["epoch"] % 100 == 0
                or m.fields["epoch"] == m.fields["max_epochs"]]
        time.sleep(0.1)
    log += [m.text for m in run.messages()]
    result = run.finish(model)
    result.legend_node.SetVisibility(False)  # search the angle on the mesh alone
    best, best_red = (0, 15), -1
    for azimuth in range(0, 360, 30):
        for elevation in (15, 45):
            image = view.capture(model, azimuth=azimuth, elevation=elevation)
            red = int(np.sum((image[..., 0] > 150) & (image[..., 2] < 120)))
            if red > best_red:
                best, best_red = (azimuth, elevation), red
    result.legend_node.SetVisibility(True)
    view.capture(model, azimuth=best[0], elevation=best[1], path=out_dir / "result_3d.png")
    view.close()
    values = {"volume": "LGE", "mesh": "LV mesh", "slices": SLICES,
              "n_slices": csl.CardioScarLogic.slice_count(volume, "z"), "half": phantom.slice_half_thickness_mm,
              "preset": options.preset, "training": options.training_config().to_dict(), "summary": result.summary, "device": result.device,
              "torch": importlib.metadata.version("torch"), "log": log}
    (out_dir / "panel_values.json").write_text(json.dumps(values, indent=2))
    print(f"azimuth/elevation {best}, {best_red} scar pixels; {result.summary}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
