"""
The tutorial's view ("How to create a history of products with django and
redis"), with its helpers from app/utils.py, doing the job the module does
in nginx: record the view (LRANGE, then LPUSH, LTRIM, EXPIRE with redis-py,
one round trip each) and answer the page with the recently viewed list.

What is left out is what the module leaves to the backend as well: the
Product model and its queryset.  The session key is the sessionid cookie.
"""

import redis
from django.conf import settings
from django.template.response import TemplateResponse

r = redis.StrictRedis(host=settings.REDIS_HOST,
                      port=settings.REDIS_PORT,
                      db=settings.REDIS_DB)

HISTORY_LENGTH = 5


def get_user_id_for_redis(request):
    # the tutorial: request.session.session_key for anonymous visitors
    return request.COOKIES.get("sessionid", "")


def get_products_ids_by_user(user_id):
    # a list rather than the tutorial's set, to keep the order
    return [int(i) for i in r.lrange(user_id, 0, -1)]


def create_product_history_by_user(user_id, product_id):
    product_history_length = r.lpush(user_id, product_id)
    r.expire(user_id, 60 * 60 * 24 * 90)
    return product_history_length


def limit_product_history_length(user_id, product_history_length):
    if product_history_length > HISTORY_LENGTH:
        r.ltrim(user_id, 0, HISTORY_LENGTH - 1)


def product_details(request, product_id):
    user_id = get_user_id_for_redis(request)
    product_ids = get_products_ids_by_user(user_id)
    if product_id not in product_ids:
        product_history_length = create_product_history_by_user(user_id,
                                                                product_id)
        limit_product_history_length(user_id, product_history_length)
    recent = [i for i in product_ids if i != product_id][:4]
    context = {"product_id": product_id, "recent": recent}
    return TemplateResponse(request, "product.html", context)
