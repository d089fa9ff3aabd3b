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
export {
  readRecords,
  collectRecords,
  NoRecordsStreamError,
  type ReadRecordsOptions,
} from "./read-records.js";
export { parseFixtures, readFixtures, formatFixtures, writeFixtures } from "./fixtures.js";
export { diffJson, diffResponses, type Change } from "./diff.js";
export { ReplayClient, type ReplayAnswer, type ReplayClientOptions } from "./client.js";
export {
  replayRecords,
  parseAgainst,
  NoWorkersError,
  type ReplayOptions,
  type ReplayReport,
  type ReplayItem,
  type ReplayStatus,
  type LatencySummary,
} from "./replay.js";
export {
  formatReport,
  formatItem,
  formatChange,
  reportToJson,
  type FormatOptions,
} from "./report.js";
