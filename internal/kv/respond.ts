// Response pieces every client handler shares: CORS headers and the non-keys error shapes.

export const CORS: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "POST, GET, OPTIONS, PUT, DELETE",
  "Access-Control-Allow-Headers": "accept, content-type, authorization",
};

export function messageResponse(status: number, message: string, extra: Record<string, string> = {}): Response {
  return new Response(`${JSON.stringify({ message })}\n`, {
    status,
    headers: { ...CORS, "Content-Type": "application/json", ...extra },
  });
}

export function text(status: number, body: string, extra: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { ...CORS, "Content-Type": "text/plain; charset=utf-8", ...extra } });
}
