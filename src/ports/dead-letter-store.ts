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
  /**
   * A page of dead letters, the latest first, each with its id (the order they were
   * recorded in): at most `limit`, of one project when given, recorded before the id
   * `before` when given (keyset: the previous page's last id).
   */
  listPage(page: { projectId?: string; before?: number; limit: number }): Promise<(DeadLetter & { id: number })[]>;
}
