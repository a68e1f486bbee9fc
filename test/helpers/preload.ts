// Loaded before the test files (bunfig.toml): an afterAll here runs once, after the last file.
import { afterAll } from "bun:test";
import { removeTempDirs } from "./procs.ts";

// The last file's directories, and those no test file could be named for, go when the run ends.
afterAll(() => removeTempDirs());
