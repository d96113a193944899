"""pycocotools on the detections `revkit val --save-json` wrote, to compare with `revkit val --metrics coco`.

    revkit val --weights W --data assets/coco128/coco128.yaml --imgsz 256 --save-json dets.json
    python scripts/coco_crosscheck.py dets.json assets/coco128/annotations/instances_train2017.json

Prints AP50 and AP50-95 with the annotations as they are and without their crowd boxes: YOLO labels have no crowd
boxes, so revkit's number equals the second (pycocotools ignores detections on crowd boxes instead of counting
them false). Needs `pip install pycocotools`.
"""
import contextlib
import copy
import io
import json
import sys

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def evaluate(annotations, results):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = annotations
        gt.createIndex()
        e = COCOeval(gt, gt.loadRes(results), "bbox")
        e.params.imgIds = [image["id"] for image in annotations["images"]]
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats[1], e.stats[0]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    results = json.load(open(sys.argv[1]))
    annotations = json.load(open(sys.argv[2]))
    no_crowd = copy.deepcopy(annotations)
    no_crowd["annotations"] = [a for a in annotations["annotations"] if not a.get("iscrowd", 0)]
    for name, a in [("as annotated", annotations), ("without crowd boxes", no_crowd)]:
        ap50, ap = evaluate(a, results)
        print(f"{name:>20}: AP50 {ap50:.6f}  AP50-95 {ap:.6f}")


if __name__ == "__main__":
    main()
