from pipeline.sweep.app import entry

entry()
