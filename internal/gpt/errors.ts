/** Anything wrong with a disk or a requested change; the message is the one line a user sees. */
export class GptError extends Error {}
