// The queue: durable per-channel message files (see store.ts and envelope-format.ts).
export { QueueStore, isValidChannelName, type EnqueueTransaction } from './store.js';
export { QueueWriteError, QueueFileError } from './errors.js';
export { MessageSpool } from './message-spool.js';
export { readStoppedChannels, writeStoppedChannels, setChannelStopped } from './stopped-channels.js';
export { arrivalKey } from './message-id.js';
export { locateQueueFile } from './locate.js';
export type { Envelope, EnvelopeDraft, NoticedFile, QueueRef, ScanEntry, QueuedRecipient, MailParams } from './types.js';
export { queueStoreFor } from './instance-store.js';
export { directoryRow, summarize, sortRows, formatSummaryTable, formatDirectoryTable, type DirectoryRow } from './report.js';
export { readQueueDepth, type ChannelQueueDepth } from './depth.js';
export { lookupQueued, type QueuedEntry } from './lookup.js';
export { readMessageSync } from './queue-file-reader.js';
