// The queue: durable per-channel message files (see store.ts and envelope-format.ts).
export { QueueStore, isValidChannelName, type QueueStoreOptions, type CorruptEntry, type EnqueueTransaction } from './store.js';
export { QueueWriteError, QueueFileError } from './errors.js';
export { MessageSpool } from './message-spool.js';
export { readStoppedChannels, writeStoppedChannels, setChannelStopped, stoppedChannelsPath } from './stopped-channels.js';
export { encodeAttempts, decodeAttempts, parseQueueFileName, queueFileName } from './file-name.js';
export { arrivalKey } from './message-id.js';
export { locateQueueFile } from './locate.js';
export type { Envelope, EnvelopeDraft, QueueRef, ScanEntry, QueuedRecipient, RecipientState, MailParams } from './types.js';
export { queueStoreFor } from './instance-store.js';
export { directoryRow, summarize, sortRows, formatSummaryTable, formatDirectoryTable, type DirectoryRow, type QueueSummary, type ChannelSummary } from './report.js';
