export {
  SelectionSchema,
  parseTimeArg,
  resolveSelection,
  selectionFilterSubject,
  matchesSelection,
  toSavedSelection,
  type Selection,
  type ResolvedSelection,
} from "./selection.js";
export { readRecords, collectRecords, NoRecordsStreamError } from "./read-records.js";
export { parseFixtures, readFixtures, formatFixtures, writeFixtures } from "./fixtures.js";
export { diffJson } from "./diff.js";
export { replayRecords, parseAgainst, NoWorkersError, type ReplayReport } from "./replay.js";
export { formatReport, formatItem, reportToJson } from "./report.js";
/**
 * Types of the public functions' options and results above, for callers to name; nothing in
 * this repository needs them by name. @public
 */
export type { ReadRecordsOptions } from "./read-records.js";
/** @public */
export type { Change } from "./diff.js";
/** @public */
export type { ReplayOptions, ReplayItem, ReplayStatus, LatencySummary } from "./replay.js";
/** @public */
export type { FormatOptions } from "./report.js";
