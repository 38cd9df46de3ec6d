/** A task (or a raised event, under its task's id) that was given up on, and why. */
export interface DeadLetter {
  taskId: string;
  projectId: string;
  reason: string;
  lastError: string | null;
  attempts: number;
  at: Date;
}

/**
 * Dead letters: what used up its attempts or could not be handled, kept for an operator.
 * Append-only. Table: dead_letters.
 */
export interface DeadLetterStore {
  /** Appends a dead letter; input the database refuses fails with ValidationError. */
  record(letter: DeadLetter): Promise<void>;
  /** Dead letters in the order they were recorded, of one project when given. */
  list(projectId?: string): Promise<DeadLetter[]>;
}
