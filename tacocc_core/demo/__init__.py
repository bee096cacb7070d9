"""The demo's report: pictures, animation and numbers of one bag replayed through the occupancy node.

`report.write_demo_report` turns a replay `Recording` (see `tacocc_core.recording`) and its bag into
`frames/*.png`, `demo.gif`, `report.md` and `report.json`; `numbers` computes what the report states,
`pictures` draws one frame, `bag_images` finds the camera images of each frame in the bag.
"""
