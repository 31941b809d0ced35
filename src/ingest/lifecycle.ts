/** Shared between main and the app: main sets `closing` once shutdown begins. */
export interface Lifecycle {
  closing: boolean;
}
